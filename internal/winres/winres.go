// Package winres carries the Windows resources of cpsagent.exe (icon,
// version information, manifest). packaging/build.sh generates
// rsrc_windows_amd64.syso here with go-winres before the Windows build;
// the Go linker links a .syso of every package in the build, so the blank
// import in cmd/cpsagent is all it takes. The .syso is a build product
// (ignored by git); without it the executable simply has no icon.
package winres
