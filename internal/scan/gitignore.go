package scan

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"regexp"
	"strings"
)

// ignoreRule is one line of a .gitignore, compiled.
type ignoreRule struct {
	base    string // directory of the .gitignore, slash-separated, relative to the walk root ("" for root)
	re      *regexp.Regexp
	negate  bool
	dirOnly bool
}

// ignoreList is the rules in effect in one directory, parents first; the
// last matching rule decides, as in git.
type ignoreList []ignoreRule

// parseGitignore compiles the patterns of a .gitignore found in base. It
// covers what real repositories use: comments, negation, trailing '/',
// anchoring by a leading or inner '/', '*', '?', '[…]' and '**'.
func parseGitignore(base string, data []byte) []ignoreRule {
	var out []ignoreRule
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \r")
		if line == "" || line[0] == '#' {
			continue
		}
		r := ignoreRule{base: base}
		if line[0] == '!' {
			r.negate = true
			line = line[1:]
		} else if strings.HasPrefix(line, `\`) {
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly = true
			line = strings.TrimRight(line, "/")
		}
		if line == "" {
			continue
		}
		anchored := strings.Contains(line, "/")
		line = strings.TrimPrefix(line, "/")
		re := globToRegexp(line)
		if !anchored {
			re = "(?:.*/)?" + re
		}
		c, err := regexp.Compile("^" + re + "$")
		if err != nil {
			continue // a pattern we cannot read must not stop the scan
		}
		r.re = c
		out = append(out, r)
	}
	return out
}

func globToRegexp(g string) string {
	var b strings.Builder
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch c {
		case '*':
			if i+1 < len(g) && g[i+1] == '*' {
				i++
				if i+1 < len(g) && g[i+1] == '/' {
					i++
					b.WriteString("(?:.*/)?")
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := strings.IndexByte(g[i:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			cls := g[i+1 : i+j]
			if strings.HasPrefix(cls, "!") {
				cls = "^" + cls[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(cls, `\`, `\\`) + "]")
			i += j
		case '\\':
			if i+1 < len(g) {
				i++
				b.WriteString(regexp.QuoteMeta(string(g[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// ignored reports whether rel (slash-separated, relative to the walk root)
// is ignored.
func (l ignoreList) ignored(rel string, isDir bool) bool {
	ign := false
	for _, r := range l {
		p := rel
		if r.base != "" {
			if !strings.HasPrefix(rel, r.base+"/") {
				continue
			}
			p = rel[len(r.base)+1:]
		}
		if r.dirOnly && !isDir {
			continue
		}
		if r.re.MatchString(p) {
			ign = !r.negate
		}
	}
	return ign
}

// withDir returns the list extended by dir's .gitignore, if any.
func (l ignoreList) withDir(root, rel string) ignoreList {
	data, err := os.ReadFile(path.Join(root, rel, ".gitignore"))
	if err != nil {
		return l
	}
	rules := parseGitignore(rel, data)
	if len(rules) == 0 {
		return l
	}
	out := make(ignoreList, 0, len(l)+len(rules))
	return append(append(out, l...), rules...)
}
