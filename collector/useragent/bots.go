package useragent

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
)

//go:embed crawler-user-agents.json
var crawlersJSON []byte

// crawler is one entry of crawler-user-agents.json.
type crawler struct {
	Pattern   string   `json:"pattern"`
	Instances []string `json:"instances"`
}

// crawlerMatcher runs the list's ~1,500 regular expressions quickly: each
// pattern is reduced to literals of which every match contains one
// (lower-cased), an Aho-Corasick automaton finds the literals present in
// the lower-cased user agent in one pass, and only those patterns' regular
// expressions run. Patterns without a usable literal run always.
type crawlerMatcher struct {
	patterns []*regexp.Regexp
	always   []int // patterns without a literal
	ac       acAutomaton
}

var (
	crawlersOnce sync.Once
	crawlers     *crawlerMatcher
	crawlerList  []crawler
)

func loadCrawlers() *crawlerMatcher {
	crawlersOnce.Do(func() {
		if err := json.Unmarshal(crawlersJSON, &crawlerList); err != nil {
			panic(fmt.Sprintf("useragent: crawler-user-agents.json: %v", err)) // compiled in: a bug
		}
		m := &crawlerMatcher{}
		var keys []string
		var owners []int
		for i, c := range crawlerList {
			re := regexp.MustCompile(c.Pattern)
			m.patterns = append(m.patterns, re)
			lits, ok := requiredLiterals(c.Pattern)
			if !ok {
				m.always = append(m.always, i)
				continue
			}
			for _, l := range lits {
				keys = append(keys, l)
				owners = append(owners, i)
			}
		}
		m.ac = buildAC(keys, owners)
		crawlers = m
	})
	return crawlers
}

// match returns the pattern of the first crawler entry matching ua.
func (m *crawlerMatcher) match(ua string) (string, bool) {
	best := -1
	try := func(i int) {
		if (best < 0 || i < best) && m.patterns[i].MatchString(ua) {
			best = i
		}
	}
	for _, i := range m.always {
		try(i)
	}
	m.ac.each(strings.ToLower(ua), try)
	if best < 0 {
		return "", false
	}
	return crawlerList[best].Pattern, true
}

// requiredLiterals returns lower-cased strings of which any match of
// pattern contains at least one; ok is false when there are none of at
// least two bytes.
func requiredLiterals(pattern string) ([]string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, false
	}
	lits, ok := literalsOf(re.Simplify())
	if !ok {
		return nil, false
	}
	for _, l := range lits {
		if len(l) < 2 {
			return nil, false
		}
	}
	return lits, true
}

func literalsOf(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{strings.ToLower(string(re.Rune))}, true
	case syntax.OpCapture, syntax.OpPlus:
		return literalsOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalsOf(re.Sub[0])
		}
	case syntax.OpConcat:
		// The sub-expression whose shortest literal is longest.
		var best []string
		bestLen := 0
		for _, sub := range re.Sub {
			lits, ok := literalsOf(sub)
			if !ok {
				continue
			}
			short := len(lits[0])
			for _, l := range lits {
				short = min(short, len(l))
			}
			if short > bestLen {
				best, bestLen = lits, short
			}
		}
		return best, best != nil
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			lits, ok := literalsOf(sub)
			if !ok {
				return nil, false
			}
			all = append(all, lits...)
		}
		return all, true
	}
	return nil, false
}

// acAutomaton is an Aho-Corasick automaton over bytes.
type acAutomaton struct {
	next []map[byte]int32
	fail []int32
	out  [][]int // owners of the keys ending here, including by fail links
}

func buildAC(keys []string, owners []int) acAutomaton {
	a := acAutomaton{next: []map[byte]int32{{}}, fail: []int32{0}, out: [][]int{nil}}
	for k, key := range keys {
		n := int32(0)
		for i := 0; i < len(key); i++ {
			nx, ok := a.next[n][key[i]]
			if !ok {
				nx = int32(len(a.next))
				a.next = append(a.next, map[byte]int32{})
				a.fail = append(a.fail, 0)
				a.out = append(a.out, nil)
				a.next[n][key[i]] = nx
			}
			n = nx
		}
		a.out[n] = append(a.out[n], owners[k])
	}
	// Breadth-first: fail links and inherited outputs.
	queue := []int32{}
	for _, child := range a.next[0] {
		queue = append(queue, child)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for b, child := range a.next[n] {
			f := a.fail[n]
			for {
				if nx, ok := a.next[f][b]; ok && nx != child {
					a.fail[child] = nx
					break
				}
				if f == 0 {
					break
				}
				f = a.fail[f]
			}
			a.out[child] = append(a.out[child], a.out[a.fail[child]]...)
			queue = append(queue, child)
		}
	}
	return a
}

// each calls f with the owner of every key found in s (possibly repeated).
func (a *acAutomaton) each(s string, f func(int)) {
	n := int32(0)
	for i := 0; i < len(s); i++ {
		b := s[i]
		for {
			if nx, ok := a.next[n][b]; ok {
				n = nx
				break
			}
			if n == 0 {
				break
			}
			n = a.fail[n]
		}
		for _, o := range a.out[n] {
			f(o)
		}
	}
}

// headless lists tokens of automated browsers that the crawler list lacks
// or that deserve their own reason.
var headless = []string{"HeadlessChrome", "Headless", "PhantomJS", "SlimerJS", "Puppeteer", "Playwright", "Selenium"}

// Bot tells whether ua is a crawler's or an automated browser's, and why.
func Bot(ua string) (reason string, ok bool) {
	if strings.TrimSpace(ua) == "" {
		return "empty_user_agent", true
	}
	for _, h := range headless {
		if strings.Contains(ua, h) {
			return "headless", true
		}
	}
	if p, ok := loadCrawlers().match(ua); ok {
		return "crawler-user-agents:" + p, true
	}
	return "", false
}
