//! A counting allocator: the memory limit of one QuickJS runtime (one slot).
//!
//! QuickJS has its own `JS_SetMemoryLimit`, but its out-of-memory error is an ordinary, catchable
//! `InternalError`: a script can `try { bomb() } catch {}` and we would never learn that the limit
//! was hit, and a runtime that hit it may hold half-built garbage. Counting here instead gives:
//!
//! - an exact, cheap `used()` (a `Cell` read) to set a per-run budget on top of what the slot
//!   already holds, without calling the runtime's memory-usage function (it walks the whole heap,
//!   and panics when called from inside a context callback);
//! - a sticky `hit` flag, so a limit hit is seen even when the script caught the error, and the
//!   slot is thrown away afterwards.
//!
//! QuickJS allocates small objects from its own arenas and asks this allocator only for arena
//! chunks and large blocks, so the per-call cost here is small.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr;
use std::rc::Rc;

use rquickjs::allocator::Allocator;

/// Size of the header in front of each block (keeps 16-byte alignment for the payload).
const HEADER: usize = 16;
const ALIGN: usize = 16;

/// The shared view of one runtime's allocations.
#[derive(Debug)]
pub(crate) struct Budget {
    used: Cell<usize>,
    limit: Cell<usize>,
    hit: Cell<bool>,
}

impl Budget {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self {
            used: Cell::new(0),
            limit: Cell::new(usize::MAX),
            hit: Cell::new(false),
        })
    }

    /// Bytes currently allocated by the runtime (payload and headers).
    pub(crate) fn used(&self) -> usize {
        self.used.get()
    }

    /// Allocations that would take `used()` past `limit` fail from now on.
    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.set(limit);
    }

    /// Whether an allocation was refused since the runtime was built.
    pub(crate) fn hit(&self) -> bool {
        self.hit.get()
    }

    fn reserve(&self, bytes: usize) -> bool {
        let used = self.used.get();
        match used.checked_add(bytes) {
            Some(total) if total <= self.limit.get() => {
                self.used.set(total);
                true
            }
            _ => {
                self.hit.set(true);
                false
            }
        }
    }

    fn release(&self, bytes: usize) {
        self.used.set(self.used.get().saturating_sub(bytes));
    }
}

/// Allocator handed to `Runtime::new_with_alloc`; every block carries its size in a header.
pub(crate) struct CountingAllocator(pub(crate) Rc<Budget>);

fn layout_for(payload: usize) -> Option<Layout> {
    let total = payload
        .checked_add(HEADER)?
        .checked_next_multiple_of(ALIGN)?;
    Layout::from_size_align(total, ALIGN).ok()
}

impl CountingAllocator {
    fn grab(&mut self, size: usize, zeroed: bool) -> *mut u8 {
        let size = size.max(1);
        let Some(layout) = layout_for(size) else {
            return ptr::null_mut();
        };
        if !self.0.reserve(layout.size()) {
            return ptr::null_mut();
        }
        // SAFETY: layout has a non-zero size.
        let base = unsafe {
            if zeroed {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        if base.is_null() {
            self.0.release(layout.size());
            return ptr::null_mut();
        }
        // SAFETY: base is valid for layout.size() >= HEADER bytes and aligned for usize.
        unsafe {
            base.cast::<usize>().write(size);
            base.add(HEADER)
        }
    }
}

/// Reads the payload size stored in front of `ptr`.
///
/// # Safety
/// `ptr` must come from `CountingAllocator` and not be freed yet.
unsafe fn stored_size(ptr: *mut u8) -> usize {
    unsafe { ptr.sub(HEADER).cast::<usize>().read() }
}

// SAFETY: every pointer handed out is 16-byte aligned, points to at least the requested size,
// and `usable_size` returns the size recorded in its header.
unsafe impl Allocator for CountingAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        self.grab(size, false)
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        match count.checked_mul(size) {
            Some(total) => self.grab(total, true),
            None => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: ptr came from grab/realloc, so its header holds a size that made a layout.
        unsafe {
            let size = stored_size(ptr);
            if let Some(layout) = layout_for(size) {
                self.0.release(layout.size());
                alloc::dealloc(ptr.sub(HEADER), layout);
            }
        }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.grab(new_size, false);
        }
        let new_size = new_size.max(1);
        // SAFETY: as in dealloc.
        let old_size = unsafe { stored_size(ptr) };
        let (Some(old_layout), Some(new_layout)) = (layout_for(old_size), layout_for(new_size))
        else {
            return ptr::null_mut();
        };
        if new_layout.size() > old_layout.size()
            && !self.0.reserve(new_layout.size() - old_layout.size())
        {
            return ptr::null_mut();
        }
        // SAFETY: the block was allocated with old_layout; the new size is non-zero.
        let base = unsafe { alloc::realloc(ptr.sub(HEADER), old_layout, new_layout.size()) };
        if base.is_null() {
            if new_layout.size() > old_layout.size() {
                self.0.release(new_layout.size() - old_layout.size());
            }
            return ptr::null_mut();
        }
        if new_layout.size() < old_layout.size() {
            self.0.release(old_layout.size() - new_layout.size());
        }
        // SAFETY: base is valid for new_layout.size() bytes.
        unsafe {
            base.cast::<usize>().write(new_size);
            base.add(HEADER)
        }
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        if ptr.is_null() {
            return 0;
        }
        // SAFETY: as in dealloc.
        unsafe { stored_size(ptr) }
    }
}
