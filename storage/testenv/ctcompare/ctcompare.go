// Package ctcompare checks, for a package's tests, that the functions
// which compare secrets (tokens, CSRF tokens, signatures) do it in
// constant time. No test can time a comparison reliably, so the check
// reads the source: a function that compares a secret with == or
// bytes.Equal looks the same from outside as one that does not, and
// only its code tells them apart. Like importcheck it imports nothing of
// wechat-relay, so any package may use it.
package ctcompare

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// constantTime are the calls that compare in constant time.
var constantTime = map[string]bool{"subtle.ConstantTimeCompare": true, "hmac.Equal": true}

// variableTime are calls that compare in time that depends on the data.
var variableTime = map[string]bool{
	"bytes.Equal": true, "bytes.Compare": true, "bytes.EqualFold": true, "bytes.HasPrefix": true,
	"strings.Compare": true, "strings.EqualFold": true, "strings.HasPrefix": true,
	"slices.Equal": true, "reflect.DeepEqual": true,
}

// Check parses file (in the current directory) and fails t unless each
// of funcs (a function or method name) compares with
// subtle.ConstantTimeCompare or hmac.Equal, and nowhere with ==, != or
// a variable-time call such as bytes.Equal — except == and != against
// a literal or nil ("empty?", "did ConstantTimeCompare return 1?"). A
// function that is gone is a failure too: its replacement must be
// listed.
func Check(t testing.TB, file string, funcs ...string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	decls := map[string]*ast.FuncDecl{}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
			decls[fd.Name.Name] = fd
		}
	}
	for _, name := range funcs {
		fd := decls[name]
		if fd == nil {
			t.Errorf("%s: no function %s: list the function that compares the secret now", file, name)
			continue
		}
		var constant bool
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				switch callee := calleeName(n.Fun); {
				case constantTime[callee]:
					constant = true
				case variableTime[callee]:
					t.Errorf("%s: %s compares with %s, whose time depends on the data", fset.Position(n.Pos()), name, callee)
				}
			case *ast.BinaryExpr:
				if (n.Op == token.EQL || n.Op == token.NEQ) && !literal(n.X) && !literal(n.Y) {
					t.Errorf("%s: %s compares two values with %s; secrets must be compared with subtle.ConstantTimeCompare", fset.Position(n.Pos()), name, n.Op)
				}
			}
			return true
		})
		if !constant {
			t.Errorf("%s: %s calls neither subtle.ConstantTimeCompare nor hmac.Equal", file, name)
		}
	}
}

// calleeName is "pkg.Func" for a call of a package's function.
func calleeName(fun ast.Expr) string {
	sel, ok := fun.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return ""
	}
	return pkg.Name + "." + sel.Sel.Name
}

// literal reports whether e is a literal or nil: comparing with one
// tells nothing of a secret's bytes.
func literal(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil"
	case *ast.ParenExpr:
		return literal(e.X)
	}
	return false
}
