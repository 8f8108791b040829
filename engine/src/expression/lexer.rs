//! Splits a template into text and tags, and a tag into tokens.
//!
//! Follows Pebble's lexer: `{{ }}` prints, `{% %}` runs a tag, `{# #}` is a
//! comment, a `-` next to a delimiter trims the whitespace on that side, and
//! `{% raw %}...{% endraw %}` (Kestra) or `{% verbatim %}` (Pebble) keep their
//! content as text. Inside a tag, names, numbers, strings (with `#{}`
//! interpolation in double quotes), operators and punctuation.

use super::ast::Pos;

/// A lexer or parser failure: what went wrong and where (byte offset).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

pub(crate) type LexResult<T> = std::result::Result<T, SyntaxError>;

fn fail<T>(pos: Pos, message: impl Into<String>) -> LexResult<T> {
    Err(SyntaxError {
        pos,
        message: message.into(),
    })
}

/// Nesting limit for brackets and string interpolation: keeps the parser's
/// recursion bounded whatever the input.
pub(crate) const MAX_NESTING: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Colon,
    Question,
    Pipe,
    Assign,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Tilde,
    DotDot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `??`: null or undefined coalescing (Kestra).
    Coalesce,
    /// `???`: undefined-only coalescing (Kestra).
    UndefinedCoalesce,
}

impl Sym {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Sym::LParen => "(",
            Sym::RParen => ")",
            Sym::LBracket => "[",
            Sym::RBracket => "]",
            Sym::LBrace => "{",
            Sym::RBrace => "}",
            Sym::Dot => ".",
            Sym::Comma => ",",
            Sym::Colon => ":",
            Sym::Question => "?",
            Sym::Pipe => "|",
            Sym::Assign => "=",
            Sym::Plus => "+",
            Sym::Minus => "-",
            Sym::Star => "*",
            Sym::Slash => "/",
            Sym::Percent => "%",
            Sym::Tilde => "~",
            Sym::DotDot => "..",
            Sym::Eq => "==",
            Sym::Ne => "!=",
            Sym::Lt => "<",
            Sym::Le => "<=",
            Sym::Gt => ">",
            Sym::Ge => ">=",
            Sym::Coalesce => "??",
            Sym::UndefinedCoalesce => "???",
        }
    }
}

/// Longest first, so that `???` wins over `??` and `?`.
const SYMBOLS: &[(&str, Sym)] = &[
    ("???", Sym::UndefinedCoalesce),
    ("??", Sym::Coalesce),
    ("..", Sym::DotDot),
    ("==", Sym::Eq),
    ("!=", Sym::Ne),
    ("<=", Sym::Le),
    (">=", Sym::Ge),
    ("(", Sym::LParen),
    (")", Sym::RParen),
    ("[", Sym::LBracket),
    ("]", Sym::RBracket),
    ("{", Sym::LBrace),
    ("}", Sym::RBrace),
    (".", Sym::Dot),
    (",", Sym::Comma),
    (":", Sym::Colon),
    ("?", Sym::Question),
    ("|", Sym::Pipe),
    ("=", Sym::Assign),
    ("+", Sym::Plus),
    ("-", Sym::Minus),
    ("*", Sym::Star),
    ("/", Sym::Slash),
    ("%", Sym::Percent),
    ("~", Sym::Tilde),
    ("<", Sym::Lt),
    (">", Sym::Gt),
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Identifiers and word operators (`and`, `or`, `not`, `is`, ...).
    Name(Box<str>),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    /// A double-quoted string with `#{expr}` parts.
    Interp(Vec<Part>),
    Sym(Sym),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Lit(Box<str>),
    Expr(Vec<Token>, Pos),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Text(String),
    /// `{{ ... }}`: the tokens between the delimiters.
    Print {
        tokens: Vec<Token>,
        pos: Pos,
    },
    /// `{% ... %}`.
    Tag {
        tokens: Vec<Token>,
        pos: Pos,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    Print,
    Tag,
}

/// Pebble's `\s` for trimming (Java's `\s`: space, tab, newline, vertical tab, form feed, return).
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Splits `source` into segments.
pub(crate) fn segments(source: &str) -> LexResult<Vec<Segment>> {
    let mut out: Vec<Segment> = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0usize;
    let mut trim_next = false;
    while i < source.len() {
        let open = find_open(source, i);
        let text_end = open.map_or(source.len(), |(at, _)| at);
        let mut text = &source[i..text_end];
        if trim_next {
            text = text.trim_start_matches(is_java_space);
        }
        let Some((at, kind)) = open else {
            push_text(&mut out, text);
            break;
        };
        let mut j = at + 2;
        let trim_before = bytes.get(j) == Some(&b'-');
        if trim_before {
            j += 1;
            text = text.trim_end_matches(is_java_space);
        }
        push_text(&mut out, text);
        match kind {
            b'#' => {
                let Some(end) = source[j..].find("#}") else {
                    return fail(at, "Unclosed comment");
                };
                let end = j + end;
                trim_next = end > j && bytes.get(end - 1) == Some(&b'-');
                i = end + 2;
            }
            b'{' => {
                let (tokens, next, trim) = tokens_until_close(source, j, Close::Print)?;
                out.push(Segment::Print { tokens, pos: at });
                trim_next = trim;
                i = next;
            }
            _ => {
                if let Some((text, next, trim)) = raw_block(source, j, at)? {
                    push_text(&mut out, text);
                    trim_next = trim;
                    i = next;
                    continue;
                }
                let (tokens, next, trim) = tokens_until_close(source, j, Close::Tag)?;
                out.push(Segment::Tag { tokens, pos: at });
                trim_next = trim;
                i = next;
            }
        }
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Segment>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Segment::Text(prev)) = out.last_mut() {
        prev.push_str(text);
    } else {
        out.push(Segment::Text(text.to_owned()));
    }
}

/// The next `{{`, `{%` or `{#` at or after `from`.
fn find_open(source: &str, from: usize) -> Option<(usize, u8)> {
    let bytes = source.as_bytes();
    let mut k = from;
    while let Some(off) = source.get(k..)?.find('{') {
        let at = k + off;
        match bytes.get(at + 1) {
            Some(&c @ (b'{' | b'%' | b'#')) => return Some((at, c)),
            _ => k = at + 1,
        }
    }
    None
}

/// `{% raw %}...{% endraw %}` and `{% verbatim %}...{% endverbatim %}`:
/// returns the text, where lexing resumes, and whether to trim what follows.
fn raw_block(source: &str, from: usize, open_at: usize) -> LexResult<Option<(&str, usize, bool)>> {
    let rest = &source[from..];
    let trimmed = rest.trim_start_matches(is_java_space);
    let (word, end_word) = if starts_with_word(trimmed, "raw") {
        ("raw", "endraw")
    } else if starts_with_word(trimmed, "verbatim") {
        ("verbatim", "endverbatim")
    } else {
        return Ok(None);
    };
    let after_word = &trimmed[word.len()..];
    let after_ws = after_word.trim_start_matches(is_java_space);
    let (trim_start, close_len) = if after_ws.starts_with("-%}") {
        (true, 3)
    } else if after_ws.starts_with("%}") {
        (false, 2)
    } else {
        return Ok(None);
    };
    let body_start = source.len() - after_ws.len() + close_len;
    // Find `{%-? endraw -?%}`.
    let mut k = body_start;
    loop {
        let Some(off) = source[k..].find("{%") else {
            return fail(open_at, format!("Unclosed \"{word}\" tag"));
        };
        let tag_at = k + off;
        let mut j = tag_at + 2;
        let trim_end = source.as_bytes().get(j) == Some(&b'-');
        if trim_end {
            j += 1;
        }
        let inner = source[j..].trim_start_matches(is_java_space);
        if starts_with_word(inner, end_word) {
            let after = inner[end_word.len()..].trim_start_matches(is_java_space);
            let (trim_after, len) = if after.starts_with("-%}") {
                (true, 3)
            } else if after.starts_with("%}") {
                (false, 2)
            } else {
                k = tag_at + 2;
                continue;
            };
            let next = source.len() - after.len() + len;
            let mut text = &source[body_start..tag_at];
            if trim_start {
                text = text.trim_start_matches(is_java_space);
            }
            if trim_end {
                text = text.trim_end_matches(is_java_space);
            }
            return Ok(Some((text, next, trim_after)));
        }
        k = tag_at + 2;
    }
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.starts_with(word)
        && !s[word.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Lexes tokens from `from` until the closing delimiter at bracket depth 0.
/// Returns the tokens, the offset after the delimiter, and whether it trims.
fn tokens_until_close(
    source: &str,
    from: usize,
    close: Close,
) -> LexResult<(Vec<Token>, usize, bool)> {
    let mut lexer = ExprLexer {
        src: source,
        i: from,
        depth: 0,
    };
    let mut tokens = Vec::new();
    let mut brackets: Vec<(Sym, Pos)> = Vec::new();
    loop {
        lexer.skip_ws();
        if brackets.is_empty() {
            let rest = &source[lexer.i..];
            let delim = match close {
                Close::Print => "}}",
                Close::Tag => "%}",
            };
            if rest.starts_with(delim) {
                return Ok((tokens, lexer.i + 2, false));
            }
            if rest.starts_with('-') && rest[1..].starts_with(delim) {
                return Ok((tokens, lexer.i + 3, true));
            }
        }
        if lexer.i >= source.len() {
            let what = match close {
                Close::Print => "}}",
                Close::Tag => "%}",
            };
            if let Some((sym, pos)) = brackets.last() {
                return fail(*pos, format!("Unclosed \"{}\"", sym.text()));
            }
            return fail(from, format!("Missing \"{what}\""));
        }
        let token = lexer.token()?;
        track_brackets(&token, &mut brackets)?;
        tokens.push(token);
    }
}

fn track_brackets(token: &Token, brackets: &mut Vec<(Sym, Pos)>) -> LexResult<()> {
    if let Tok::Sym(sym) = token.tok {
        match sym {
            Sym::LParen | Sym::LBracket | Sym::LBrace => {
                if brackets.len() >= MAX_NESTING {
                    return fail(token.pos, "Too deeply nested");
                }
                brackets.push((sym, token.pos));
            }
            Sym::RParen | Sym::RBracket | Sym::RBrace => {
                let Some((open, _)) = brackets.pop() else {
                    return fail(token.pos, format!("Unexpected \"{}\"", sym.text()));
                };
                let expected = match open {
                    Sym::LParen => Sym::RParen,
                    Sym::LBracket => Sym::RBracket,
                    _ => Sym::RBrace,
                };
                if expected != sym {
                    return fail(token.pos, format!("Unclosed \"{}\"", expected.text()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

struct ExprLexer<'s> {
    src: &'s str,
    i: usize,
    /// String interpolation depth.
    depth: usize,
}

impl<'s> ExprLexer<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.i..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace());
        self.i += rest.len() - trimmed.len();
    }

    fn token(&mut self) -> LexResult<Token> {
        let pos = self.i;
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return fail(pos, "Unexpected end of template");
        };
        if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            self.i += len;
            return Ok(Token {
                tok: Tok::Name(rest[..len].into()),
                pos,
            });
        }
        if c.is_ascii_digit() {
            return self.number(pos);
        }
        if c == '\'' {
            return self.single_quoted(pos);
        }
        if c == '"' {
            return self.double_quoted(pos);
        }
        for (text, sym) in SYMBOLS {
            if rest.starts_with(text) {
                self.i += text.len();
                return Ok(Token {
                    tok: Tok::Sym(*sym),
                    pos,
                });
            }
        }
        fail(pos, format!("Unexpected character [{c}]"))
    }

    fn number(&mut self, pos: Pos) -> LexResult<Token> {
        let rest = self.rest();
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let bytes = rest.as_bytes();
        let mut len = int_len;
        let mut is_float = false;
        if bytes.get(len) == Some(&b'.') && bytes.get(len + 1).is_some_and(u8::is_ascii_digit) {
            let frac = rest[len + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - len - 1);
            len += 1 + frac;
            is_float = true;
        }
        let text = &rest[..len];
        let tok = if is_float {
            match text.parse::<f64>() {
                Ok(f) => Tok::Float(f),
                Err(_) => return fail(pos, format!("Invalid number [{text}]")),
            }
        } else {
            match text.parse::<i64>() {
                Ok(n) => Tok::Int(n),
                Err(_) => return fail(pos, format!("Number too large [{text}]")),
            }
        };
        self.i += len;
        // Pebble's long suffix: `10L`.
        if !is_float && self.rest().starts_with('L') {
            let after = self.rest()[1..].chars().next();
            if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                self.i += 1;
            }
        }
        Ok(Token { tok, pos })
    }

    fn single_quoted(&mut self, pos: Pos) -> LexResult<Token> {
        let body = &self.src[self.i + 1..];
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    // Pebble unescapes only the quote; other escapes stay as written.
                    Some((_, '\'')) => out.push('\''),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                '\'' => {
                    self.i += 1 + k + 1;
                    return Ok(Token {
                        tok: Tok::Str(out.into()),
                        pos,
                    });
                }
                _ => out.push(c),
            }
        }
        fail(pos, "Unclosed \"'\"")
    }

    fn double_quoted(&mut self, pos: Pos) -> LexResult<Token> {
        if self.depth >= MAX_NESTING {
            return fail(pos, "Too deeply nested");
        }
        self.i += 1;
        let mut parts: Vec<Part> = Vec::new();
        let mut lit = String::new();
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return fail(pos, "Unclosed \"\"\"");
            };
            match c {
                '"' => {
                    self.i += 1;
                    break;
                }
                '\\' => {
                    let next = rest[1..].chars().next();
                    match next {
                        Some('"') => lit.push('"'),
                        Some(other) => {
                            lit.push('\\');
                            lit.push(other);
                        }
                        None => return fail(pos, "Unclosed \"\"\""),
                    }
                    self.i += 1 + next.map_or(0, char::len_utf8);
                }
                '#' if rest[1..].starts_with('{') => {
                    let interp_pos = self.i;
                    self.i += 2;
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit).into()));
                    }
                    let tokens = self.interpolation(interp_pos)?;
                    parts.push(Part::Expr(tokens, interp_pos));
                }
                _ => {
                    lit.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
        if parts.is_empty() {
            return Ok(Token {
                tok: Tok::Str(lit.into()),
                pos,
            });
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into()));
        }
        Ok(Token {
            tok: Tok::Interp(parts),
            pos,
        })
    }

    /// Tokens of `#{ ... }` up to its closing brace.
    fn interpolation(&mut self, open: Pos) -> LexResult<Vec<Token>> {
        self.depth += 1;
        let mut tokens = Vec::new();
        let mut brackets: Vec<(Sym, Pos)> = Vec::new();
        loop {
            self.skip_ws();
            if self.i >= self.src.len() {
                return fail(open, "Unclosed \"#{\"");
            }
            if brackets.is_empty() && self.rest().starts_with('}') {
                self.i += 1;
                self.depth -= 1;
                return Ok(tokens);
            }
            let token = self.token()?;
            track_brackets(&token, &mut brackets)?;
            tokens.push(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tokens: &[Token]) -> Vec<String> {
        tokens
            .iter()
            .map(|t| match &t.tok {
                Tok::Name(n) => n.to_string(),
                Tok::Int(n) => n.to_string(),
                Tok::Float(f) => f.to_string(),
                Tok::Str(s) => format!("'{s}'"),
                Tok::Interp(_) => "interp".into(),
                Tok::Sym(s) => s.text().into(),
            })
            .collect()
    }

    #[test]
    fn splits_text_print_and_tags() {
        let segs = segments("a {{ x.y }} b {% if z %}c{% endif %}{# note #}d").expect("lexes");
        assert_eq!(segs.len(), 7);
        assert_eq!(segs[0], Segment::Text("a ".into()));
        let Segment::Print { tokens, pos } = &segs[1] else {
            panic!("print expected")
        };
        assert_eq!(*pos, 2);
        assert_eq!(names(tokens), ["x", ".", "y"]);
        assert_eq!(segs[6], Segment::Text("d".into()));
    }

    #[test]
    fn operators_longest_first() {
        let Segment::Print { tokens, .. } =
            &segments("{{ a ??? b ?? c ? 1..2 : 3.5 }}").expect("lexes")[0]
        else {
            panic!("print expected")
        };
        assert_eq!(
            names(tokens),
            ["a", "???", "b", "??", "c", "?", "1", "..", "2", ":", "3.5"]
        );
    }

    #[test]
    fn closing_braces_inside_a_map_literal_do_not_end_the_print() {
        let segs = segments("{{ {'a': {'b': 1}} }}!").expect("lexes");
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1], Segment::Text("!".into()));
    }

    #[test]
    fn whitespace_control_trims_the_adjacent_text() {
        let segs = segments("a  \n {{- x -}} \n b").expect("lexes");
        assert_eq!(segs[0], Segment::Text("a".into()));
        assert_eq!(segs[2], Segment::Text("b".into()));
    }

    #[test]
    fn raw_keeps_its_content() {
        let segs = segments("x{% raw %}{{ y }}{% endraw %}z").expect("lexes");
        assert_eq!(segs, vec![Segment::Text("x{{ y }}z".into())]);
    }

    #[test]
    fn strings_unescape_only_their_quote() {
        let Segment::Print { tokens, .. } =
            &segments(r#"{{ 'it\'s\n' ~ "say \"hi\"" }}"#).expect("lexes")[0]
        else {
            panic!("print expected")
        };
        assert_eq!(tokens[0].tok, Tok::Str(r"it's\n".into()));
        assert_eq!(tokens[2].tok, Tok::Str(r#"say "hi""#.into()));
    }

    #[test]
    fn unclosed_things_are_errors() {
        assert!(segments("{{ a ").is_err());
        assert!(segments("{{ (a }}").is_err());
        assert!(segments("{{ a) }}").is_err());
        assert!(segments("{{ 'abc }}").is_err());
        assert!(segments("{# abc").is_err());
        assert!(segments("{{ 99999999999999999999 }}").is_err());
    }
}
