package scan

// keywordMatcher is a case-insensitive Aho-Corasick automaton compiled to a
// dense DFA: one table lookup per input byte, so the prefilter costs the
// same however many keywords the rules declare. The alphabet is folded to
// lower case and squeezed to the bytes that occur in keywords, which keeps
// the table small enough to stay in cache.
type keywordMatcher struct {
	class    [256]uint8 // byte -> column; 0 means "not in any keyword"
	ncls     int
	delta    []int32 // state*ncls + class -> next state
	out      [][]int // state -> keyword indexes ending here (including via suffix links)
	keywords []string
	lens     []int
}

// newKeywordMatcher compiles the keywords (matched case-insensitively).
func newKeywordMatcher(keywords []string) *keywordMatcher {
	m := &keywordMatcher{keywords: keywords}
	m.ncls = 1
	for _, k := range keywords {
		for i := 0; i < len(k); i++ {
			c := lower(k[i])
			if m.class[c] == 0 {
				m.class[c] = uint8(m.ncls)
				m.ncls++
			}
		}
	}
	// Fold upper case onto the lower-case column.
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+'a'-'A']
	}
	// Build the trie.
	goto_ := [][]int32{make([]int32, m.ncls)}
	m.out = [][]int{nil}
	for ki, k := range keywords {
		s := int32(0)
		for i := 0; i < len(k); i++ {
			c := m.class[lower(k[i])]
			if goto_[s][c] == 0 {
				goto_ = append(goto_, make([]int32, m.ncls))
				m.out = append(m.out, nil)
				goto_[s][c] = int32(len(goto_) - 1)
			}
			s = goto_[s][c]
		}
		m.out[s] = append(m.out[s], ki)
		m.lens = append(m.lens, len(k))
	}
	// Breadth-first: fill failure transitions so goto_ becomes a DFA.
	fail := make([]int32, len(goto_))
	queue := make([]int32, 0, len(goto_))
	for c := 1; c < m.ncls; c++ {
		if s := goto_[0][c]; s != 0 {
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		m.out[r] = append(m.out[r], m.out[fail[r]]...)
		for c := 1; c < m.ncls; c++ {
			s := goto_[r][c]
			if s != 0 {
				fail[s] = goto_[fail[r]][c]
				queue = append(queue, s)
			} else {
				goto_[r][c] = goto_[fail[r]][c]
			}
		}
	}
	// Each entry holds the next state's row offset (state*ncls), negated
	// when that state has outputs, so the hot loop does one load, no
	// multiply, and one sign test per byte.
	m.delta = make([]int32, len(goto_)*m.ncls)
	for s, row := range goto_ {
		for c, next := range row {
			v := next * int32(m.ncls)
			if len(m.out[next]) > 0 {
				v = -v - 1
			}
			m.delta[s*m.ncls+c] = v
		}
	}
	return m
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// find calls hit(keyword index, start offset) for every keyword occurrence.
func (m *keywordMatcher) find(data []byte, hit func(kw, start int)) {
	row := int32(0)
	n := int32(m.ncls)
	delta := m.delta
	class := &m.class
	for i, b := range data {
		v := delta[row+int32(class[b])]
		if v >= 0 {
			row = v
			continue
		}
		row = -v - 1
		for _, kw := range m.out[row/n] {
			hit(kw, i+1-m.lens[kw])
		}
	}
}
