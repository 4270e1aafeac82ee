//! The services' memory allocator: jemalloc, for Rust's allocations and, through the `malloc`
//! and `free` it exports, for librdkafka's (linked into the same binary) and the system
//! libraries'.
//!
//! librdkafka allocates per record (a fetch op per record consumed, a message and its headers
//! per record produced) on one thread and frees on another: glibc's malloc spent about 13 % of
//! the processor's CPU there. With jemalloc the processor used 22–23 % less CPU per reading
//! over a 3 M-reading backlog, both guarantees (the builds in alternation, medians of four
//! rounds, docs/performance.md), with about the peak resident memory glibc had with two
//! arenas.
//!
//! One arena ([`MALLOC_CONF`]): jemalloc's default of four per core let the peak resident
//! memory with 100 000 sensors grow from 71–74 to 78–85 MiB at no gain in throughput we could
//! measure; faster page purging (`dirty_decay_ms`) lowered the peak but cost up to 40 % in
//! throughput. The `MALLOC_CONF` environment variable still overrides it, option by option.

/// The allocator every binary linking this crate uses.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: one arena, shared by every thread (each keeps its
/// own cache in front of it).
#[allow(
    unsafe_code,
    reason = "jemalloc reads its built-in options from the C symbol `malloc_conf`, a \
              NUL-terminated string that this static is, for the program's life"
)]
#[unsafe(export_name = "malloc_conf")]
pub static MALLOC_CONF: &[u8; 10] = b"narenas:1\0";

#[cfg(test)]
mod tests {
    use tikv_jemalloc_ctl::{opt, thread};

    #[test]
    fn jemalloc_runs_with_our_options() {
        // `opt.*` are the options in force, after `malloc_conf` and `MALLOC_CONF`.
        assert_eq!(opt::narenas::read().expect("opt.narenas"), 1);
        let version = tikv_jemalloc_ctl::version::read().expect("version");
        assert!(version.starts_with("5."), "{version}");
    }

    #[test]
    fn librdkafka_allocates_from_jemalloc() {
        // jemalloc counts every byte this thread allocates from it. librdkafka's
        // `rd_kafka_mem_malloc` is the `malloc` librdkafka itself calls: had that stayed
        // glibc's, the count would not move.
        const SIZE: usize = 1 << 20;
        let allocated = thread::allocatedp::mib()
            .expect("thread.allocatedp")
            .read()
            .expect("thread.allocatedp");
        let before = allocated.get();
        #[allow(
            unsafe_code,
            reason = "librdkafka's allocation functions, a block allocated and freed at once; \
                      they take no client (the null pointer)"
        )]
        unsafe {
            let block = rdkafka::bindings::rd_kafka_mem_malloc(std::ptr::null_mut(), SIZE);
            assert!(!block.is_null());
            rdkafka::bindings::rd_kafka_mem_free(std::ptr::null_mut(), block);
        }
        let grown = allocated.get() - before;
        assert!(
            (SIZE as u64..SIZE as u64 + 4096).contains(&grown),
            "jemalloc saw {grown} bytes allocated for librdkafka's {SIZE}"
        );
    }
}
