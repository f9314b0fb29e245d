package main

import "golang.org/x/sys/windows/registry"

// trustDeferredByInstaller reports whether the MSI installed the agent for
// this user: it writes HKCU\Software\cpsagent (value Doc) in every install.
// With CPSAGENT_NOTRUST=1 it skipped "cpsagent-cli install -trust-only",
// so the agent's first start adds the CA (docs/admin.md §2).
func trustDeferredByInstaller() bool {
	k, err := registry.OpenKey(registry.CURRENT_USER, `Software\cpsagent`, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	defer k.Close()
	_, _, err = k.GetStringValue("Doc")
	return err == nil
}
