package local

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// directAlign is the alignment O_DIRECT needs of the buffer, the file
// offset and the length: 4 KiB covers every logical block size in use.
const directAlign = 4096

// directMin is the smallest write worth O_DIRECT's setup (two fcntl
// calls): table chunks and markers go through the page cache.
const directMin = 256 << 10

// directWriter writes p's whole 4 KiB blocks with O_DIRECT from the
// caller's buffer (no copy into the page cache), then the tail, if any,
// through the page cache. The file is new and empty (Put's temporary
// file), so the offset starts aligned. Any refusal (filesystem without
// O_DIRECT, unaligned buffer) falls back to an ordinary write of what is
// left: never an error of its own.
type directWriter struct {
	f  *os.File
	p  string // the blob's path, for the test hook
	fs *fileSet
}

func (w *directWriter) Write(p []byte) (int, error) {
	head := len(p) &^ (directAlign - 1)
	if head == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign != 0 || setDirect(w.f, true) != nil {
		return w.f.Write(p)
	}
	n, err := w.f.Write(p[:head])
	if cerr := setDirect(w.f, false); err == nil && cerr != nil {
		return n, cerr
	}
	if err != nil && !(n == 0 && errors.Is(err, syscall.EINVAL)) {
		return n, err
	}
	if n > 0 {
		w.fs.synced("direct", w.p)
	}
	// The tail, or (EINVAL with nothing written: the filesystem took the
	// flag but not this write) all of it, through the page cache.
	m, err := w.f.Write(p[n:])
	return n + m, err
}

// setDirect sets or clears O_DIRECT on f (F_SETFL changes it on an open
// file on Linux).
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		fl, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		if errno != 0 {
			serr = errno
			return
		}
		if on {
			fl |= syscall.O_DIRECT
		} else {
			fl &^= syscall.O_DIRECT
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, fl); errno != 0 {
			serr = errno
		}
	})
	if err != nil {
		return err
	}
	return serr
}
