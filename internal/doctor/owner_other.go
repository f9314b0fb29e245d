//go:build !linux

package doctor

// portOwner is not implemented on this OS (Windows: GetExtendedTcpTable;
// macOS: lsof); the report then names no process.
func portOwner(int) string { return "" }
