// This process's memory as Linux reports it (/proc), and the allocator setting of runs
// that allocate ciphertexts by the thousand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace heinfer::memory {

/// The field `field` of /proc/self/status, named without its colon (e.g. "VmRSS",
/// "VmHWM", "RssAnon"), in bytes (the kernel reports KiB). Returns 0 when /proc is
/// unavailable or the field is absent; does not throw.
std::int64_t proc_status_bytes(std::string_view field);

/// MemAvailable of /proc/meminfo in bytes: the kernel's estimate of the memory new
/// allocations can get without swapping. Throws std::runtime_error when it cannot be read.
std::int64_t mem_available_bytes();

/// Sets glibc malloc up for ciphertexts, which are allocated and freed by the thousand
/// (1-2 MB each): blocks up to 32 MiB (the largest threshold glibc accepts) come from the
/// heap instead of their own mmap(), and freed memory stays in the heap (trim threshold
/// 1 GiB) instead of going back to the kernel, which would page-fault and zero it again
/// on the next allocation. Process-wide; call before the first ciphertext. Not for runs
/// whose resident memory must follow a budget: the heap keeps what was freed.
void configure_allocator_for_ciphertexts();

/// Returns the whole pages inside [p, p + bytes) to the kernel (madvise MADV_DONTNEED on
/// private anonymous memory: they read as zero afterwards and cost no resident memory
/// until written again). The partial pages at both ends are kept. For memory the caller
/// owns and will not read again, e.g. the values of input rows already encrypted. Returns
/// the bytes released; does not throw (0 when the kernel refuses).
std::size_t release_pages(void* p, std::size_t bytes);

}  // namespace heinfer::memory
