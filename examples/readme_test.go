// Package examples holds example programs and the test that keeps the
// README's Go code compiling.
package examples

import (
	"fmt"
	"go/scanner"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// snippetImports are the packages a README snippet may use, by the name it
// calls them.
var snippetImports = map[string]string{
	"context":  "context",
	"errors":   "errors",
	"fmt":      "fmt",
	"log":      "log",
	"http":     "net/http",
	"time":     "time",
	"jwk":      "github.com/lestrrat-go/jwx/v3/jwk",
	"jwt":      "github.com/lestrrat-go/jwx/v3/jwt",
	"httprc":   "github.com/lestrrat-go/httprc/v3",
	"backend":  "github.com/authphone/authphone/sdk/backend",
	"cloudapi": "github.com/authphone/authphone/sdk/cloudapi",
	"emulator": "github.com/authphone/authphone/emulator",
	"sdk":      "github.com/authphone/authphone/sdk",
	"keystore": "github.com/authphone/authphone/keystore",
	"flows":    "github.com/authphone/authphone/flows",
	"adminapi": "github.com/authphone/authphone/sdk/adminapi",
	"os":       "os",
}

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

func readmeSnippets(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range goBlock.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	if len(out) < 3 {
		t.Fatalf("README.md has %d Go snippets; expected the data service, the token check and the SDK walk-through", len(out))
	}
	return out
}

// imports lists the import lines for the packages code names (an
// identifier followed by a dot, outside comments and strings).
func imports(code string) string {
	fset := token.NewFileSet()
	var sc scanner.Scanner
	sc.Init(fset.AddFile("", fset.Base(), len(code)), []byte(code), nil, 0)
	used := map[string]bool{}
	prev := ""
	for {
		_, tok, lit := sc.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.PERIOD && prev != "" {
			used[prev] = true
		}
		prev = ""
		if tok == token.IDENT {
			prev = lit
		}
	}
	var lines []string
	for name, path := range snippetImports {
		if used[name] {
			lines = append(lines, fmt.Sprintf("\t%q", path))
		}
	}
	sort.Strings(lines)
	return "import (\n" + strings.Join(lines, "\n") + "\n)\n\n"
}

// TestREADMESnippetsCompile builds every Go snippet of README.md as
// pasted: a snippet with func main is a program; any other is the body of a
// function that has ctx (a context.Context), accessToken and dir (strings)
// at hand and returns an error. Nothing is added but the imports, so an
// unused variable, a wrong name or a changed API fails the test.
func TestREADMESnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the README's snippets with the go command")
	}
	dir, err := os.MkdirTemp("testdata", "readme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	hasMain := false
	for i, code := range readmeSnippets(t) {
		var src string
		if strings.Contains(code, "func main()") {
			hasMain = true
			src = "package main\n\n" + imports(code) + code
		} else {
			src = "package main\n\n" + imports(code+" context.X") +
				fmt.Sprintf("func snippet%d(ctx context.Context, accessToken, dir string) error {\n%s\treturn nil\n}\n", i, code)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("snippet%d.go", i)), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !hasMain {
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "vet", ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a README snippet does not compile as pasted:\n%s", out)
	}
}

// TestDataServiceIsTheREADMESnippet: the example program make test builds
// is the README's data service, word for word, and it builds.
func TestDataServiceIsTheREADMESnippet(t *testing.T) {
	var snippet string
	for _, code := range readmeSnippets(t) {
		if strings.Contains(code, "func main()") {
			snippet = code
		}
	}
	if snippet == "" {
		t.Fatal("README.md has no data-service snippet (func main)")
	}
	prog, err := os.ReadFile(filepath.Join("dataservice", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(prog), snippet) {
		t.Fatal("examples/dataservice/main.go no longer ends with the README's data-service snippet: copy it over (below the imports)")
	}
	if testing.Short() {
		return
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./dataservice")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("examples/dataservice does not build:\n%s", out)
	}
}

// TestMakeDemoSaysItIsCompiling: on a fresh machine the first build takes
// minutes, so make demo's first line says so instead of a silent wait.
func TestMakeDemoSaysItIsCompiling(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\ndemo:")
	if !ok {
		t.Fatal("the Makefile has no demo target")
	}
	lines := strings.Split(rest, "\n")
	if len(lines) < 3 {
		t.Fatal("make demo has no recipe")
	}
	first := strings.TrimSpace(lines[1])
	if !strings.HasPrefix(first, "@echo ") || !strings.Contains(first, "compiling") || !strings.Contains(lines[2], "go") && !strings.Contains(lines[2], "$(GO)") {
		t.Fatalf("make demo should first echo that it is compiling, then build; its recipe starts %q, %q", first, strings.TrimSpace(lines[2]))
	}
}
