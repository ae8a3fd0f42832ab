package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// commit is the commit the binary was built from when the build passes it
// with -ldflags "-X main.commit=…" (make build and make demo do): builds
// with -buildvcs=false, or from a tree Go does not read as a repository,
// record no vcs.revision of their own.
var commit string

// buildInfo is the module version and commit of the running binary, from
// runtime/debug.ReadBuildInfo ("(devel)" and "unknown" when the build did
// not record them, as in `go run` or tests).
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
}

func readBuildInfo() buildInfo {
	out := buildInfo{Version: "(devel)", Commit: "unknown"}
	if commit != "" {
		out.Commit = commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return out
	}
	out.GoVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" {
		out.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Commit = s.Value
		case "vcs.modified":
			out.Modified = s.Value == "true"
		}
	}
	return out
}

func versionString() string {
	b := readBuildInfo()
	s := fmt.Sprintf("authphone %s (commit %s", b.Version, b.Commit)
	if b.Modified {
		s += ", modified"
	}
	if b.GoVersion != "" {
		s += ", " + b.GoVersion
	}
	return s + ")"
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version and commit this binary was built from",
		Example: `  authphone version
  authphone --version
  authphone version --json`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.json {
				a.printJSON(readBuildInfo())
			} else {
				a.printf("%s\n", versionString())
			}
			return nil
		},
	}
}
