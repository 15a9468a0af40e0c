//go:build unix

package main

import "syscall"

// privateFiles makes every file and directory this process creates
// readable by its owner only (0600 / 0700), whatever the inherited umask.
// It is the one place that covers files whose modes we do not choose:
// Bleve creates index_meta.json 0666, SQLite its -wal and -shm files after
// the database's, and libraries may add more. Code that creates data files
// still asks for 0600/0700 itself, so that a library use (tests) is safe.
func privateFiles() { syscall.Umask(0o077) }
