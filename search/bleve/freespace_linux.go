package bleve

import (
	"fmt"
	"syscall"
)

// freeSpace describes the space left on dir's file system, the usual
// reason an index fails to persist.
func freeSpace(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "free space unknown: " + err.Error()
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < 1<<20 {
		return fmt.Sprintf("no space left on device: %d bytes free", free)
	}
	return fmt.Sprintf("%d MiB free", free>>20)
}
