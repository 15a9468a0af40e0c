package archive

import "unsafe"

// DirectAlign is the alignment a body must have (its start, and the length
// of what is written at once) for a local store to write it with O_DIRECT,
// around the page cache (archive/local). A bulk writer that hands over
// buffers from AlignedBuffer gets that path; any other body is written
// through the cache.
const DirectAlign = 4096

// AlignedBuffer returns n bytes starting on a DirectAlign boundary.
func AlignedBuffer(n int) []byte {
	raw := make([]byte, n+DirectAlign)
	off := (DirectAlign - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%DirectAlign)) % DirectAlign
	return raw[off : off+n : off+n]
}
