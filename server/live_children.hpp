// The table of a server's live children (fork design, prefork workers).
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

namespace ipclab {

// The live children's pids. A fork server writes this table right after
// each fork, while the child still shares the parent's pages: a std::set
// allocated a node there (malloc in the parent: its heap pages copied on
// write, the child's copies faulted in), and a vector's heap storage was
// still one page copied per session. The first kInline live children are
// kept in the table itself, in the server loop's frame (a stack page the
// parent writes after each fork anyway); more go to a vector, whose room for
// --max-clients is made once, up front, so adding never allocates.
class LiveChildren {
public:
    static constexpr std::size_t kInline = 32;
    void reserve(std::size_t n) {
        if (n > kInline) more_.reserve(n - kInline);
    }
    void add(pid_t pid) {
        if (n_ < kInline)
            inline_[n_++] = pid;
        else
            more_.push_back(pid);
    }
    void remove(pid_t pid) {
        auto last = inline_.begin() + static_cast<std::ptrdiff_t>(n_);
        auto it = std::find(inline_.begin(), last, pid);
        if (it != last) {
            *it = inline_[--n_];
            if (!more_.empty()) {  // keep the table full while there are more
                inline_[n_++] = more_.back();
                more_.pop_back();
            }
            return;
        }
        auto m = std::find(more_.begin(), more_.end(), pid);
        if (m == more_.end()) return;
        *m = more_.back();
        more_.pop_back();
    }
    std::size_t size() const { return n_ + more_.size(); }
    template <class F>
    void for_each(F f) const {
        for (std::size_t i = 0; i < n_; ++i) f(inline_[i]);
        for (pid_t pid : more_) f(pid);
    }

private:
    std::array<pid_t, kInline> inline_{};
    std::size_t n_ = 0;
    std::vector<pid_t> more_;
};

}  // namespace ipclab
