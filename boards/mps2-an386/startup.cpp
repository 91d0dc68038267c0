// SPDX-License-Identifier: MIT
// Board mps2-an386 startup and C runtime: vector table, reset handler (FPU on, .data copied,
// .bss zeroed, constructors, main's arguments from the debugger), fault reports, and newlib's
// system calls over Arm semihosting: the console is the host's stdout/stderr, exit() ends
// QEMU with the program's status (SYS_EXIT_EXTENDED), the heap lies between .bss and the stacks.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>

extern "C" {
extern std::uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern std::uint32_t __stack_top[];
extern char __heap_start[], __heap_end[];
void __libc_init_array();
int main(int argc, char** argv);
[[noreturn]] void p11tls_reset_handler();
}

namespace {

// --- semihosting -------------------------------------------------------------------------

enum : std::uintptr_t {
    sys_open = 0x01,
    sys_write = 0x05,
    sys_get_cmdline = 0x15,
    sys_exit_extended = 0x20,
    adp_stopped_application_exit = 0x20026,
};

std::uintptr_t semihost(std::uintptr_t op, const void* arg) noexcept {
    register std::uintptr_t r0 asm("r0") = op;
    register const void* r1 asm("r1") = arg;
    asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int console[3] = {-1, -1, -1};  // semihosting handles of stdin, stdout, stderr

void open_console() noexcept {
    static constexpr char tt[] = ":tt";
    for (std::uintptr_t fd = 0; fd < 3; ++fd) {
        const std::uintptr_t block[] = {reinterpret_cast<std::uintptr_t>(tt), fd * 4, sizeof tt - 1};  // r, w, a
        console[fd] = static_cast<int>(semihost(sys_open, block));
    }
}

[[noreturn]] void semihost_exit(int status) noexcept {
    const std::uintptr_t block[] = {adp_stopped_application_exit, static_cast<std::uintptr_t>(status)};
    semihost(sys_exit_extended, block);
    for (;;) asm volatile("bkpt 0");
}

void write_raw(int fd, const char* text, std::size_t n) noexcept {
    const std::uintptr_t block[] = {static_cast<std::uintptr_t>(console[fd]), reinterpret_cast<std::uintptr_t>(text), n};
    semihost(sys_write, block);
}

// main's arguments: the command line QEMU got with -semihosting-config arg=... (run-qemu.sh).
char cmdline[256];
char* args[16];

int read_arguments() noexcept {
    std::uintptr_t block[] = {reinterpret_cast<std::uintptr_t>(cmdline), sizeof cmdline - 1};
    if (semihost(sys_get_cmdline, block) != 0) return 0;
    cmdline[block[1]] = '\0';
    int argc = 0;
    for (char* p = cmdline; *p && argc < 15;) {
        while (*p == ' ') *p++ = '\0';
        if (!*p) break;
        args[argc++] = p;
        while (*p && *p != ' ') ++p;
    }
    args[argc] = nullptr;
    return argc;
}

[[noreturn]] void start() noexcept {
    std::memcpy(__data_start, __data_load, (__data_end - __data_start) * sizeof(std::uint32_t));
    std::memset(__bss_start, 0, (__bss_end - __bss_start) * sizeof(std::uint32_t));
    open_console();
    __libc_init_array();
    const int argc = read_arguments();
    std::exit(main(argc, args));
}

// --- faults ---------------------------------------------------------------------------------

[[noreturn]] void fault(const char* what) noexcept {
    const auto scb = [](std::uintptr_t a) { return *reinterpret_cast<volatile std::uint32_t*>(a); };
    char text[128];
    int n = std::snprintf(text, sizeof text, "\n*** %s: CFSR=%08lx HFSR=%08lx MMFAR=%08lx BFAR=%08lx\n", what,
                          static_cast<unsigned long>(scb(0xE000ED28)), static_cast<unsigned long>(scb(0xE000ED2C)),
                          static_cast<unsigned long>(scb(0xE000ED34)), static_cast<unsigned long>(scb(0xE000ED38)));
    write_raw(2, text, n > 0 ? static_cast<std::size_t>(n) : 0);
    semihost_exit(128 + 11);
}

void hard_fault() { fault("HardFault"); }
void mem_manage() { fault("MemManage fault"); }
void bus_fault() { fault("BusFault"); }
void usage_fault() { fault("UsageFault"); }
void unexpected() { fault("unexpected exception"); }

}  // namespace

// The reset handler enables the FPU before any code that might use it (-mfloat-abi=hard).
extern "C" [[gnu::naked, noreturn]] void p11tls_reset_handler() {
    asm volatile(
        "ldr r0, =0xE000ED88\n"  // CPACR
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n"  // CP10, CP11: full access
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "b %0\n" ::"i"(start));
}

using Handler = void (*)();
[[gnu::section(".vectors"), gnu::used]] const Handler vector_table[16] = {
    reinterpret_cast<Handler>(__stack_top),
    p11tls_reset_handler,
    unexpected,  // NMI
    hard_fault,
    mem_manage,
    bus_fault,
    usage_fault,
    nullptr, nullptr, nullptr, nullptr,
    unexpected,  // SVCall
    unexpected,  // DebugMonitor
    nullptr,
    unexpected,  // PendSV
    unexpected,  // SysTick
};

// --- newlib system calls ----------------------------------------------------------------

extern "C" {

int _write(int fd, const char* buf, int len) {
    if (fd < 1 || fd > 2 || console[fd] < 0) {
        errno = EBADF;
        return -1;
    }
    const std::uintptr_t block[] = {static_cast<std::uintptr_t>(console[fd]), reinterpret_cast<std::uintptr_t>(buf),
                                    static_cast<std::uintptr_t>(len)};
    return len - static_cast<int>(semihost(sys_write, block));  // SYS_WRITE returns bytes not written
}
int _read(int, char*, int) { return 0; }
int _close(int) { return -1; }
int _lseek(int, int, int) { return 0; }
int _isatty(int fd) { return fd >= 0 && fd <= 2; }
int _fstat(int, struct stat* st) {
    std::memset(st, 0, sizeof *st);
    st->st_mode = S_IFCHR;
    return 0;
}
int _getpid() { return 1; }
int _kill(int, int sig) {
    std::fflush(stdout);
    semihost_exit(128 + sig);
}
[[noreturn]] void _exit(int status) { semihost_exit(status); }

void* _sbrk(std::ptrdiff_t increment) {
    static char* brk = __heap_start;
    if (increment > __heap_end - brk || increment < __heap_start - brk) {
        errno = ENOMEM;
        return reinterpret_cast<void*>(-1);
    }
    char* old = brk;
    brk += increment;
    return old;
}

}  // extern "C"
