//! A private read-only `mmap` of the dump (Linux, 64-bit), declared here
//! rather than through a crate: two calls, and libc is linked anyway.
use std::fs::File;

pub struct Mmap {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and never handed out mutably.
unsafe impl Send for Mmap {}
// SAFETY: as above; shared reads of immutable memory.
unsafe impl Sync for Mmap {}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod sys {
    use std::ffi::c_void;
    extern "C" {
        pub fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: i32,
            flags: i32,
            fd: i32,
            off: i64,
        ) -> *mut c_void;
        pub fn munmap(addr: *mut c_void, len: usize) -> i32;
    }
    pub const PROT_READ: i32 = 1;
    pub const MAP_PRIVATE: i32 = 2;
}

impl Mmap {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    pub fn new(file: &File, len: u64) -> Option<Mmap> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: a fresh private read-only mapping of a file we hold
        // open; failure is checked (MAP_FAILED is -1) and we fall back.
        let p = unsafe {
            sys::mmap(
                std::ptr::null_mut(),
                len,
                sys::PROT_READ,
                sys::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if p.is_null() || p as isize == -1 {
            return None;
        }
        Some(Mmap {
            ptr: p as *const u8,
            len,
        })
    }

    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    pub fn new(_file: &File, _len: u64) -> Option<Mmap> {
        None
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, offset: u64, n: usize) -> Option<&[u8]> {
        let o = usize::try_from(offset).ok()?;
        if o.checked_add(n)? > self.len {
            return None;
        }
        // SAFETY: [o, o + n) lies inside the live mapping of `len` bytes.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(o), n) })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
        // SAFETY: unmapping exactly what `new` mapped, once.
        unsafe {
            sys::munmap(self.ptr as *mut _, self.len);
        }
    }
}
