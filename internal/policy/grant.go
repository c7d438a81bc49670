package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stint-dev/stint/internal/core"
)

// pattern is a compiled "target/role" grant pattern.
type pattern struct {
	target, role segment
}

// segment matches one side of a grant. parts are the literal pieces between
// '*' wildcards; a segment without '*' has one part and matches exactly.
type segment struct {
	parts []string
}

func (p pattern) match(g core.Grant) bool {
	return p.target.match(g.Target) && p.role.match(g.Role)
}

func parsePattern(s string) (pattern, error) {
	t, r, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(r, "/") {
		return pattern{}, fmt.Errorf("pattern %q: want target/role", s)
	}
	ts, err := parseSegment(t)
	if err != nil {
		return pattern{}, fmt.Errorf("pattern %q: target: %w", s, err)
	}
	rs, err := parseSegment(r)
	if err != nil {
		return pattern{}, fmt.Errorf("pattern %q: role: %w", s, err)
	}
	return pattern{target: ts, role: rs}, nil
}

// parseSegment accepts the characters config names use, plus '*'. Anything
// else (spaces, quotes, brackets) is more likely a typo or a mistaken glob
// syntax than a real target name, and a policy typo must not pass silently.
func parseSegment(s string) (segment, error) {
	if s == "" {
		return segment{}, errors.New("empty")
	}
	for _, c := range s {
		if !validSegmentRune(c) {
			return segment{}, fmt.Errorf("character %q not allowed (letters, digits, '-', '_', '.', ':', '@' and '*')", c)
		}
	}
	return segment{parts: strings.Split(s, "*")}, nil
}

func validSegmentRune(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.ContainsRune("-_.:@*", c)
}

// match reports whether s matches: the first part is a prefix, the last a
// suffix, and the middle parts appear in order between them. Taking the
// leftmost occurrence of each middle part is enough, since '*' absorbs any
// gap.
func (g segment) match(s string) bool {
	if len(g.parts) == 1 {
		return s == g.parts[0]
	}
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, p := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}
