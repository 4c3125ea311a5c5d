package clickhouse

import (
	"errors"
	"fmt"
	"strings"
)

// A small lexer and cursor for the statements of sql/migrations: enough to
// find a statement's kind, table, column list, engine and sorting key while
// keeping every other character as it was written.

type tokenKind uint8

const (
	tkSpace tokenKind = iota
	tkComment
	tkIdent
	tkQuoted // `name` or "name"
	tkString // 'text'
	tkNumber
	tkPunct
)

type token struct {
	kind tokenKind
	text string
}

// name is an identifier's name without its quotes.
func (t token) name() string {
	if t.kind == tkQuoted && len(t.text) >= 2 {
		return t.text[1 : len(t.text)-1]
	}
	return t.text
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// lex splits s into tokens; concatenating their texts gives s back. An
// unterminated quote or comment runs to the end of s.
func lex(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		j := i + 1
		var k tokenKind
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			k = tkSpace
			for j < len(s) && strings.IndexByte(" \t\n\r", s[j]) >= 0 {
				j++
			}
		case c == '-' && j < len(s) && s[j] == '-':
			k = tkComment
			if n := strings.IndexByte(s[i:], '\n'); n >= 0 {
				j = i + n
			} else {
				j = len(s)
			}
		case c == '/' && j < len(s) && s[j] == '*':
			k = tkComment
			if n := strings.Index(s[i+2:], "*/"); n >= 0 {
				j = i + 2 + n + 2
			} else {
				j = len(s)
			}
		case isIdentStart(c):
			k = tkIdent
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
		case c >= '0' && c <= '9':
			k = tkNumber
			for j < len(s) && (isIdentPart(s[j]) || s[j] == '.') {
				j++
			}
		case c == '`' || c == '"' || c == '\'':
			k = tkQuoted
			if c == '\'' {
				k = tkString
			}
			for j < len(s) {
				if s[j] == '\\' {
					j += 2
					continue
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c { // doubled quote
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			j = min(j, len(s))
		default:
			k = tkPunct
		}
		toks = append(toks, token{kind: k, text: s[i:j]})
		i = j
	}
	return toks
}

// parser is a cursor over a statement's tokens that steps over spaces and
// comments: i always rests on a significant token (or the end).
type parser struct {
	toks []token
	i    int
}

func newParser(toks []token) *parser {
	p := &parser{toks: toks}
	p.skipSpace()
	return p
}

func (p *parser) skipSpace() {
	for p.i < len(p.toks) && (p.toks[p.i].kind == tkSpace || p.toks[p.i].kind == tkComment) {
		p.i++
	}
}

// next steps past the current token.
func (p *parser) next() {
	if p.i < len(p.toks) {
		p.i++
	}
	p.skipSpace()
}

// words reports whether the next significant tokens are ws (any case).
func (p *parser) words(ws ...string) bool {
	j := p.i
	for _, w := range ws {
		for j < len(p.toks) && (p.toks[j].kind == tkSpace || p.toks[j].kind == tkComment) {
			j++
		}
		if j >= len(p.toks) || p.toks[j].kind != tkIdent || !strings.EqualFold(p.toks[j].text, w) {
			return false
		}
		j++
	}
	return true
}

// skipWords steps past ws if they come next.
func (p *parser) skipWords(ws ...string) bool {
	if !p.words(ws...) {
		return false
	}
	for range ws {
		p.next()
	}
	return true
}

func (p *parser) isWord(w string) bool {
	return p.i < len(p.toks) && p.toks[p.i].kind == tkIdent && strings.EqualFold(p.toks[p.i].text, w)
}

func (p *parser) punct(s string) bool {
	return p.i < len(p.toks) && p.toks[p.i].kind == tkPunct && p.toks[p.i].text == s
}

// skipGroup steps past a parenthesised group starting at the cursor and
// returns the index just after its closing parenthesis.
func (p *parser) skipGroup() (int, error) {
	if !p.punct("(") {
		return 0, errors.New("want (")
	}
	depth := 0
	for j := p.i; j < len(p.toks); j++ {
		if p.toks[j].kind != tkPunct {
			continue
		}
		switch p.toks[j].text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				p.i = j
				p.next()
				return j + 1, nil
			}
		}
	}
	return 0, errors.New("unbalanced parentheses")
}

// tableName reads name or db.name and returns the name.
func (p *parser) tableName() (string, error) {
	if p.i >= len(p.toks) || (p.toks[p.i].kind != tkIdent && p.toks[p.i].kind != tkQuoted) {
		return "", fmt.Errorf("want a table name at %q", text(p.toks[p.i:min(p.i+3, len(p.toks))]))
	}
	name := p.toks[p.i].name()
	p.next()
	if p.punct(".") {
		p.next()
		if p.i >= len(p.toks) || (p.toks[p.i].kind != tkIdent && p.toks[p.i].kind != tkQuoted) {
			return "", errors.New("want a table name after the database")
		}
		name = p.toks[p.i].name()
		p.next()
	}
	return name, nil
}

// engine reads an engine name and its arguments at the cursor and returns
// them with every token after them (spaces included).
func (p *parser) engine() (name, args string, rest []token, err error) {
	if p.i >= len(p.toks) || p.toks[p.i].kind != tkIdent {
		return "", "", nil, errors.New("want an engine name")
	}
	name = p.toks[p.i].text
	end := p.i + 1
	p.next()
	if p.punct("(") {
		start := p.i
		if end, err = p.skipGroup(); err != nil {
			return "", "", nil, err
		}
		args = text(p.toks[start:end])
	}
	rest = p.toks[end:]
	if len(rest) > 0 && rest[0].kind != tkSpace {
		rest = append([]token{{kind: tkSpace, text: "\n"}}, rest...)
	}
	return name, args, rest, nil
}

// findTop returns the index of the first top-level word w from the cursor,
// or -1.
func (p *parser) findTop(w string) int {
	depth := 0
	for j := p.i; j < len(p.toks); j++ {
		tk := p.toks[j]
		switch {
		case tk.kind == tkPunct && tk.text == "(":
			depth++
		case tk.kind == tkPunct && tk.text == ")":
			depth--
		case depth == 0 && tk.kind == tkIdent && strings.EqualFold(tk.text, w):
			return j
		}
	}
	return -1
}
