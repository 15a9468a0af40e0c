//go:build !linux

package bleve

func freeSpace(string) string { return "free space unknown" }
