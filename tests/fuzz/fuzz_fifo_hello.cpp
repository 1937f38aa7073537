// The fifo transport's hello record and private-directory names
// (ipc/fifo_hello.hpp).
//
//   input: hello record (16 bytes, when present) | the rest as a file name
//
// Contract: decode_hello throws ProtocolError for a wrong magic or version,
// nothing else, and what it accepts re-encodes to the same bytes.
// parse_file_name never throws; a name it accepts is one this transport
// builds from the parts it returned (well_known_path, the lock suffix,
// session_paths), so the server only ever touches files it could have made.
#include <algorithm>
#include <string>

#include "ipc/error.hpp"
#include "ipc/fifo_hello.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ipclab;
using ipclab::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto bytes = reinterpret_cast<const std::byte*>(data);
    if (size >= fifo::kHelloSize) {
        std::span<const std::byte, fifo::kHelloSize> hb(bytes, fifo::kHelloSize);
        try {
            fifo::Hello h = fifo::decode_hello(hb);
            require(fifo::has_magic(bytes), "hello accepted without the magic");
            auto again = fifo::encode_hello(h);
            require(std::equal(again.begin(), again.end(), hb.begin()), "hello round trip");
        } catch (const ProtocolError&) {
        }
    }
    std::string file(reinterpret_cast<const char*>(data), size);
    // Fuzz the whole input as a name too: most names are short, hellos are not.
    for (const std::string& f : {file, size > fifo::kHelloSize ? file.substr(fifo::kHelloSize) : std::string()}) {
        auto p = fifo::parse_file_name(f);
        if (!p) continue;
        require(!p->name.empty(), "parsed a name with an empty --name");
        using K = fifo::ParsedName::Kind;
        switch (p->kind) {
        case K::well_known:
            require(fifo::well_known_path("d", p->name) == "d/" + f, "well-known name round trip");
            break;
        case K::lock:
            require(fifo::well_known_path("d", p->name) + ".lock" == "d/" + f, "lock name round trip");
            break;
        case K::c2s:
        case K::s2c: {
            auto paths = fifo::session_paths("d", p->name, p->pid, p->serial);
            require((p->kind == K::c2s ? paths.c2s : paths.s2c) == "d/" + f, "session name round trip");
            break;
        }
        }
    }
    return 0;
}
