package local

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/casevault/casevault/archive"
)

// directMin is the smallest in-memory body written with O_DIRECT: below
// it a write through the page cache costs less than the device's wait.
const directMin = 64 << 10

// directAlign is the alignment O_DIRECT needs of the buffer, the length
// and the file offset (the logical block size of common devices and
// filesystems is at most this); writers get such buffers from
// archive.AlignedBuffer.
const directAlign = archive.DirectAlign

// writeDirect writes b to the new, empty file f bypassing the page cache
// when it can: the aligned head of b with O_DIRECT, the tail (under
// 4 KiB) through the page cache. Why (issue 17 §4): a backup copies a
// gigabyte of attachments it will not read again. Through the page cache
// each byte was copied into a freshly allocated cache page, then flushed
// by the closing fsync; on the build VMs a cache page the guest has not
// touched lately costs a hypervisor fault, and the copy into them was
// the largest item of a full backup's profile (copy_folio_from_iter_atomic,
// 22% of the samples with perf). Direct writes go from the caller's buffer
// to the device and evict nothing the database needs from the cache. It
// reports false, having written nothing, when the buffer is not aligned or
// the filesystem refuses O_DIRECT (tmpfs, some network filesystems): the
// caller then writes through the page cache.
func writeDirect(f *os.File, b []byte) (bool, error) {
	head := len(b) &^ (directAlign - 1)
	if len(b) < directMin || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign != 0 {
		return false, nil
	}

	if !setDirect(f, true) {
		return false, nil
	}
	buffered := func() error {
		if !setDirect(f, false) {
			return errors.New("local blobs: cannot turn O_DIRECT off")
		}
		return nil
	}

	n, err := f.Write(b[:head])
	if errors.Is(err, unix.EINVAL) && n == 0 {
		// The filesystem took the flag but not the write.
		return false, buffered()
	}
	if err != nil {
		return true, err
	}

	if err := buffered(); err != nil {
		return true, err
	}
	if head < len(b) {
		if _, err := f.Write(b[head:]); err != nil {
			return true, err
		}
	}
	return true, nil
}

// setDirect turns O_DIRECT on or off for f.
func setDirect(f *os.File, on bool) bool {
	raw, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) {
		var flags int
		if flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr != nil {
			return
		}
		if on {
			flags |= unix.O_DIRECT
		} else {
			flags &^= unix.O_DIRECT
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, flags)
	}); err != nil {
		return false
	}
	return ferr == nil
}

// bulkReader reads a file the way a bulk reader (a restore) wants: reads
// into 4 KiB-aligned buffers of aligned length at aligned offsets go from
// the device straight into the caller's buffer (O_DIRECT), not through
// the page cache; the first read that is not aligned (typically the one
// after a short read at the end of the file) turns O_DIRECT off for the
// rest. The file a restore reads was written once by a backup and will
// not be read again soon: caching it only evicted the database's pages
// and, on the build VMs, cost a hypervisor fault per new cache page.
type bulkReader struct {
	*os.File
	off    int64
	direct bool
}

func newBulkReader(f *os.File) *bulkReader {
	return &bulkReader{File: f, direct: setDirect(f, true)}
}

func (r *bulkReader) Read(p []byte) (int, error) {
	aligned := len(p)%directAlign == 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign == 0 && r.off%directAlign == 0
	if r.direct && !aligned {
		r.direct = false
		if !setDirect(r.File, false) {
			return 0, errors.New("local blobs: cannot turn O_DIRECT off")
		}
	}
	n, err := r.File.Read(p)
	if r.direct && n == 0 && errors.Is(err, unix.EINVAL) {
		// The filesystem took the flag but not the read.
		r.direct = false
		if !setDirect(r.File, false) {
			return 0, err
		}
		n, err = r.File.Read(p)
	}
	r.off += int64(n)
	return n, err
}
