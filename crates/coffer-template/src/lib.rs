//! The part of Go's `text/template` that coffer's templates use: report
//! templates (gitleaks' `--report-template`) and the agent's templates
//! (consul-template's language). Text, `{{ pipeline }}` with `-` trimming,
//! comments, fields (`.File`, `$f.Tags`), variables (`$x := …`,
//! `range $i, $f := .`), `if`/`else if`/`else`, `range` (with `else`),
//! `with`, parentheses and `|` pipes, other delimiters; Go's functions
//! `len`, `index`, `not`, `and`, `or`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`,
//! `print`, `printf`, `println`, `html`, `js`, `urlquery`, and the sprig
//! ones gitleaks' templates use: `quote`, `squote`, `upper`, `lower`,
//! `title`, `trim`, `join`, `add`, `sub`, `mul`, `div`, `default`,
//! `toJson`, `toPrettyJson`, `now`, `date`. A caller adds its own
//! functions through [`Functions`]; any other function is an error naming
//! it.

use serde_json::Value;

/// What went wrong, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

fn bad(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// Functions a caller adds (consulted before the built-in ones).
pub trait Functions {
    /// Calls `name` with `args` (a piped value comes last), or `None` when
    /// the function is not one of these.
    fn call(&mut self, name: &str, args: &[Value]) -> Option<Result<Value, String>>;

    /// Where a reader finds the functions there are (for the error about an
    /// unknown one).
    fn docs(&self) -> &str {
        "the documentation"
    }
}

/// No functions beyond the built-in ones.
pub struct BuiltinsOnly(pub &'static str);

impl Functions for BuiltinsOnly {
    fn call(&mut self, _: &str, _: &[Value]) -> Option<Result<Value, String>> {
        None
    }

    fn docs(&self) -> &str {
        self.0
    }
}

/// A parsed template.
pub struct Template {
    nodes: Vec<Node>,
    missing_key_error: bool,
}

impl Template {
    /// Parses `src` with `{{ }}`.
    pub fn parse(src: &str) -> Result<Template, Error> {
        Self::parse_with(src, "{{", "}}")
    }

    /// Parses `src` with other delimiters (`left_delimiter`, `right_delimiter`).
    pub fn parse_with(src: &str, left: &str, right: &str) -> Result<Template, Error> {
        if left.is_empty() || right.is_empty() {
            return Err(bad("delimiters may not be empty"));
        }
        let tokens = lex(src, left, right)?;
        let mut pos = 0;
        match parse(&tokens, &mut pos)? {
            (nodes, None) => Ok(Template {
                nodes,
                missing_key_error: false,
            }),
            (_, Some(e)) => Err(bad(format!("{{{{{e}}}}} without a block to end"))),
        }
    }

    /// With `true`, a map key that is not there is an error (Go's
    /// `missingkey=error`) instead of printing `<no value>`.
    pub fn error_on_missing_key(mut self, yes: bool) -> Template {
        self.missing_key_error = yes;
        self
    }

    /// Renders with `data` as `.` and `funcs` beside the built-in functions.
    pub fn render(&self, data: &Value, funcs: &mut dyn Functions) -> Result<String, Error> {
        let mut out = String::new();
        let mut scope = vec![("$".to_owned(), data.clone())];
        let mut cx = Cx {
            funcs,
            missing_key_error: self.missing_key_error,
        };
        cx.exec(&self.nodes, data, &mut scope, &mut out)?;
        Ok(out)
    }
}

/// Checks that a template parses (before the work it reports on, so a
/// mistake costs nothing); unknown functions show when it runs.
pub fn check(template: &str) -> Result<(), Error> {
    Template::parse(template).map(|_| ())
}

/// Renders `template` with `data` as `.` and only the built-in functions.
pub fn render(template: &str, data: &Value, docs: &'static str) -> Result<String, Error> {
    Template::parse(template)?.render(data, &mut BuiltinsOnly(docs))
}

// --- lexing -----------------------------------------------------------------

enum Token {
    Text(String),
    Action(String),
}

fn lex(src: &str, left: &str, right: &str) -> Result<Vec<Token>, Error> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find(left) else {
            let text = if trim_next { rest.trim_start() } else { rest };
            out.push(Token::Text(text.to_owned()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + left.len()..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        out.push(Token::Text(text.to_owned()));
        let body_start = if trim_left { 1 } else { 0 };
        let close =
            find_close(after, right).ok_or_else(|| bad(format!("a {left} is not closed")))?;
        let mut body = &after[body_start..close];
        trim_next = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
        if trim_next {
            body = &body[..body.len() - 1];
        }
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            out.push(Token::Action(body.to_owned()));
        }
        rest = &after[close + right.len()..];
    }
    Ok(out)
}

/// Where the delimiter closing an action is, skipping quoted strings.
fn find_close(s: &str, right: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, b'"' | b'`' | b'\'') => quote = Some(b[i]),
            (None, _) if b[i..].starts_with(right.as_bytes()) => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

// --- parsing ----------------------------------------------------------------

enum Node {
    Text(String),
    Print(Pipe),
    Assign(String, Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Vec<String>, Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// Commands joined by `|`.
type Pipe = Vec<Vec<Arg>>;

#[derive(Clone)]
enum Arg {
    /// `.A.B` (empty: `.`).
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
    Func(String),
    /// `(pipeline)`, then `.A.B` on its value.
    Sub(Pipe, Vec<String>),
}

/// Parses nodes until `{{end}}`/`{{else…}}` (returned) or the end.
fn parse(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), Error> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let t = &tokens[*pos];
        *pos += 1;
        let action = match t {
            Token::Text(s) => {
                if !s.is_empty() {
                    nodes.push(Node::Text(s.clone()));
                }
                continue;
            }
            Token::Action(a) => a.as_str(),
        };
        let (word, rest) = split_word(action);
        match word {
            "end" => return Ok((nodes, Some("end".into()))),
            "else" => return Ok((nodes, Some(action.to_owned()))),
            "if" => nodes.push(parse_if(rest, tokens, pos)?),
            "with" => {
                let pipe = parse_pipe(rest)?;
                let (body, alt) = block(tokens, pos, "with")?;
                nodes.push(Node::With(pipe, body, alt));
            }
            "range" => {
                let (vars, expr) = match rest.find(":=") {
                    Some(at) => (
                        rest[..at]
                            .split(',')
                            .map(|v| v.trim().to_owned())
                            .collect::<Vec<_>>(),
                        &rest[at + 2..],
                    ),
                    None => (Vec::new(), rest),
                };
                if vars.len() > 2 || vars.iter().any(|v| !v.starts_with('$')) {
                    return Err(bad(format!("range {rest}: expected `range $i, $x := …`")));
                }
                let pipe = parse_pipe(expr)?;
                let (body, alt) = block(tokens, pos, "range")?;
                nodes.push(Node::Range(vars, pipe, body, alt));
            }
            "define" | "template" | "block" | "break" | "continue" => {
                return Err(bad(format!("{{{{{word}}}}} is not supported")));
            }
            _ => match assignment(action) {
                Some((var, expr)) => nodes.push(Node::Assign(var, parse_pipe(expr)?)),
                None => nodes.push(Node::Print(parse_pipe(action)?)),
            },
        }
    }
    Ok((nodes, None))
}

/// `{{ $x := pipe }}` (or `=`).
fn assignment(action: &str) -> Option<(String, &str)> {
    let var_end = action.find(|c: char| c.is_whitespace())?;
    let var = &action[..var_end];
    let rest = action[var_end..].trim_start();
    let expr = rest.strip_prefix(":=").or_else(|| rest.strip_prefix('='))?;
    (var.starts_with('$') && !expr.starts_with('=')).then(|| (var.to_owned(), expr))
}

fn parse_if(cond: &str, tokens: &[Token], pos: &mut usize) -> Result<Node, Error> {
    let pipe = parse_pipe(cond)?;
    let (body, end) = parse(tokens, pos)?;
    let alt = match end.as_deref() {
        Some("end") => Vec::new(),
        Some(e) if e.starts_with("else") => {
            let rest = e["else".len()..].trim();
            if let Some(c) = rest.strip_prefix("if ") {
                vec![parse_if(c, tokens, pos)?]
            } else {
                let (alt, end) = parse(tokens, pos)?;
                if end.as_deref() != Some("end") {
                    return Err(bad("if … else without end"));
                }
                alt
            }
        }
        _ => return Err(bad("if without end")),
    };
    Ok(Node::If(pipe, body, alt))
}

/// A block's body and its `else` part, up to `end`.
fn block(tokens: &[Token], pos: &mut usize, what: &str) -> Result<(Vec<Node>, Vec<Node>), Error> {
    let (body, end) = parse(tokens, pos)?;
    match end.as_deref() {
        Some("end") => Ok((body, Vec::new())),
        Some("else") => {
            let (alt, end) = parse(tokens, pos)?;
            if end.as_deref() != Some("end") {
                return Err(bad(format!("{what} … else without end")));
            }
            Ok((body, alt))
        }
        _ => Err(bad(format!("{what} without end"))),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(at) => (&s[..at], s[at..].trim_start()),
        None => (s, ""),
    }
}

fn parse_pipe(src: &str) -> Result<Pipe, Error> {
    let mut chars = src.char_indices().peekable();
    let mut pipe: Pipe = vec![Vec::new()];
    while let Some(&(i, c)) = chars.peek() {
        match c {
            _ if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                pipe.push(Vec::new());
            }
            '(' => {
                let mut depth = 0;
                let mut end = None;
                let mut quote: Option<char> = None;
                for (j, d) in src[i..].char_indices() {
                    match (quote, d) {
                        (Some(q), d) if d == q => quote = None,
                        (Some(_), _) => {}
                        (None, '"' | '`') => quote = Some(d),
                        (None, '(') => depth += 1,
                        (None, ')') => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(i + j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| bad(format!("unclosed ( in {src:?}")))?;
                // `(index . 0).File`: fields of the value in parentheses.
                let tail = &src[end + 1..];
                let chain = if tail.starts_with('.') {
                    tail.find(|c: char| c.is_whitespace() || c == '|' || c == '(' || c == ')')
                        .unwrap_or(tail.len())
                } else {
                    0
                };
                let fields = tail[..chain]
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                push_arg(&mut pipe, Arg::Sub(parse_pipe(&src[i + 1..end])?, fields));
                while chars.peek().is_some_and(|&(k, _)| k <= end + chain) {
                    chars.next();
                }
            }
            '"' | '`' => {
                let (lit, len) = string_literal(&src[i..])?;
                push_arg(&mut pipe, Arg::Str(lit));
                while chars.peek().is_some_and(|&(k, _)| k < i + len) {
                    chars.next();
                }
            }
            _ => {
                let len = src[i..]
                    .find(|c: char| c.is_whitespace() || c == '|' || c == '(' || c == ')')
                    .unwrap_or(src.len() - i);
                let word = &src[i..i + len];
                push_arg(&mut pipe, word_arg(word)?);
                while chars.peek().is_some_and(|&(k, _)| k < i + len) {
                    chars.next();
                }
            }
        }
    }
    if pipe.iter().any(Vec::is_empty) {
        return Err(bad(format!("an empty command in {src:?}")));
    }
    Ok(pipe)
}

fn push_arg(pipe: &mut Pipe, a: Arg) {
    if let Some(last) = pipe.last_mut() {
        last.push(a);
    }
}

fn word_arg(w: &str) -> Result<Arg, Error> {
    let fields = |s: &str| -> Vec<String> {
        s.split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(match w {
        "true" => Arg::Bool(true),
        "false" => Arg::Bool(false),
        "nil" => Arg::Nil,
        _ if w.starts_with('.') => Arg::Field(fields(w)),
        _ if w.starts_with('$') => {
            let (name, path) = w.split_once('.').unwrap_or((w, ""));
            Arg::Var(name.to_owned(), fields(path))
        }
        _ if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => Arg::Num(
            w.parse()
                .map_err(|_| bad(format!("{w:?} is not a number")))?,
        ),
        _ if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Arg::Func(w.to_owned()),
        _ => return Err(bad(format!("cannot read {w:?}"))),
    })
}

/// A Go string literal at the start of `s` and its length in bytes.
fn string_literal(s: &str) -> Result<(String, usize), Error> {
    if let Some(rest) = s.strip_prefix('`') {
        let end = rest.find('`').ok_or_else(|| bad("unclosed raw string"))?;
        return Ok((rest[..end].to_owned(), end + 2));
    }
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match it.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(e) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(bad("unclosed string"))
}

// --- execution --------------------------------------------------------------

type Scope = Vec<(String, Value)>;

struct Cx<'f> {
    funcs: &'f mut dyn Functions,
    missing_key_error: bool,
}

impl Cx<'_> {
    fn exec(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        scope: &mut Scope,
        out: &mut String,
    ) -> Result<(), Error> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Print(p) => out.push_str(&show(&self.eval(p, dot, scope)?)),
                Node::Assign(var, p) => {
                    let v = self.eval(p, dot, scope)?;
                    scope.push((var.clone(), v));
                }
                Node::If(p, then, alt) => {
                    let branch = if truthy(&self.eval(p, dot, scope)?) {
                        then
                    } else {
                        alt
                    };
                    let depth = scope.len();
                    self.exec(branch, dot, scope, out)?;
                    scope.truncate(depth);
                }
                Node::With(p, body, alt) => {
                    let v = self.eval(p, dot, scope)?;
                    let depth = scope.len();
                    if truthy(&v) {
                        self.exec(body, &v, scope, out)?;
                    } else {
                        self.exec(alt, dot, scope, out)?;
                    }
                    scope.truncate(depth);
                }
                Node::Range(vars, p, body, alt) => {
                    let v = self.eval(p, dot, scope)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Value::Object(m) => m
                            .iter()
                            .map(|(k, x)| (Value::from(k.clone()), x.clone()))
                            .collect(),
                        Value::Number(n) => (0..n.as_u64().unwrap_or(0))
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect(),
                        Value::Null => Vec::new(),
                        other => return Err(bad(format!("range over a {}", kind(other)))),
                    };
                    if items.is_empty() {
                        self.exec(alt, dot, scope, out)?;
                        continue;
                    }
                    for (key, item) in items {
                        let depth = scope.len();
                        match vars.as_slice() {
                            [x] => scope.push((x.clone(), item.clone())),
                            [i, x] => {
                                scope.push((i.clone(), key));
                                scope.push((x.clone(), item.clone()));
                            }
                            _ => {}
                        }
                        self.exec(body, &item, scope, out)?;
                        scope.truncate(depth);
                    }
                }
            }
        }
        Ok(())
    }

    fn eval(&mut self, pipe: &Pipe, dot: &Value, scope: &Scope) -> Result<Value, Error> {
        let mut piped: Option<Value> = None;
        for cmd in pipe {
            let v = match &cmd[0] {
                Arg::Func(name) => {
                    let mut args = Vec::with_capacity(cmd.len());
                    for a in &cmd[1..] {
                        args.push(self.operand(a, dot, scope)?);
                    }
                    args.extend(piped.take());
                    self.call(name, args)?
                }
                first => {
                    if cmd.len() > 1 || piped.is_some() {
                        return Err(bad("only a function takes arguments"));
                    }
                    self.operand(first, dot, scope)?
                }
            };
            piped = Some(v);
        }
        Ok(piped.unwrap_or(Value::Null))
    }

    fn operand(&mut self, a: &Arg, dot: &Value, scope: &Scope) -> Result<Value, Error> {
        Ok(match a {
            Arg::Field(path) => self.walk(dot, path)?,
            Arg::Var(name, path) => {
                let v = scope
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| bad(format!("undefined variable {name}")))?;
                self.walk(v, path)?
            }
            Arg::Str(s) => Value::from(s.clone()),
            Arg::Num(n) => number(*n),
            Arg::Bool(b) => Value::from(*b),
            Arg::Nil => Value::Null,
            Arg::Func(name) => self.call(name, Vec::new())?,
            Arg::Sub(p, path) => {
                let v = self.eval(p, dot, scope)?;
                self.walk(&v, path)?
            }
        })
    }

    /// `.A.B` on `v`; a missing map key is `<no value>` or, when asked, an error.
    fn walk(&self, v: &Value, path: &[String]) -> Result<Value, Error> {
        let mut cur = v;
        for p in path {
            match cur.get(p) {
                Some(next) => cur = next,
                None if self.missing_key_error && cur.is_object() => {
                    return Err(bad(format!("map has no entry for key {p:?}")));
                }
                None => return Ok(Value::Null),
            }
        }
        Ok(cur.clone())
    }

    /// A caller's function, else a built-in one.
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, Error> {
        if let Some(r) = self.funcs.call(name, &args) {
            return r.map_err(|e| bad(format!("{name}: {e}")));
        }
        builtin(name, args, self.funcs.docs())
    }
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

fn num(v: &Value) -> Result<f64, Error> {
    v.as_f64()
        .ok_or_else(|| bad(format!("a {} is not a number", kind(v))))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// What a value is, for errors: values may be secrets and never appear
/// in a message.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// A value as `{{ }}` prints it (Go's `fmt` `%v`).
fn show(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, x)| format!("{k}:{}", show(x)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Go's `%q` of a string.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn builtin(name: &str, args: Vec<Value>, docs: &str) -> Result<Value, Error> {
    let arity = |n: usize| -> Result<(), Error> {
        if args.len() == n {
            Ok(())
        } else {
            Err(bad(format!(
                "{name} takes {n} argument(s), got {}",
                args.len()
            )))
        }
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => show(other),
    };
    let cmp = |f: fn(std::cmp::Ordering) -> bool| -> Result<Value, Error> {
        arity(2)?;
        let ord = match (&args[0], &args[1]) {
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (a, b) => num(a)?
                .partial_cmp(&num(b)?)
                .ok_or_else(|| bad("cannot compare"))?,
        };
        Ok(Value::from(f(ord)))
    };
    let arith = |f: fn(f64, f64) -> f64| -> Result<Value, Error> {
        arity(2)?;
        Ok(number(f(num(&args[0])?, num(&args[1])?)))
    };
    Ok(match name {
        "len" => {
            arity(1)?;
            Value::from(match &args[0] {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => return Err(bad(format!("len of a {}", kind(other)))),
            })
        }
        "index" => {
            let mut it = args.into_iter();
            let mut cur = it.next().ok_or_else(|| bad("index needs a value"))?;
            for k in it {
                cur = match (&cur, &k) {
                    (Value::Array(a), Value::Number(n)) => a
                        .get(n.as_u64().unwrap_or(u64::MAX) as usize)
                        .cloned()
                        .ok_or_else(|| bad("index out of range"))?,
                    (Value::Object(m), Value::String(s)) => {
                        m.get(s).cloned().unwrap_or(Value::Null)
                    }
                    _ => return Err(bad("index of something that is not a list or a map")),
                };
            }
            cur
        }
        "not" => {
            arity(1)?;
            Value::from(!truthy(&args[0]))
        }
        "and" => args
            .iter()
            .find(|v| !truthy(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|v| truthy(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "eq" => {
            if args.len() < 2 {
                return Err(bad("eq takes at least 2 arguments"));
            }
            let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            };
            Value::from(args[1..].iter().any(|b| same(&args[0], b)))
        }
        "ne" => {
            arity(2)?;
            let same = match (args[0].as_f64(), args[1].as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => args[0] == args[1],
            };
            Value::from(!same)
        }
        "lt" => cmp(std::cmp::Ordering::is_lt)?,
        "le" => cmp(std::cmp::Ordering::is_le)?,
        "gt" => cmp(std::cmp::Ordering::is_gt)?,
        "ge" => cmp(std::cmp::Ordering::is_ge)?,
        "print" => Value::from(args.iter().map(text).collect::<Vec<_>>().concat()),
        "println" => Value::from(args.iter().map(text).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            let (fmt, rest) = args
                .split_first()
                .ok_or_else(|| bad("printf needs a format"))?;
            Value::from(printf(&text(fmt), rest)?)
        }
        "html" => Value::from(
            args.iter()
                .map(text)
                .collect::<String>()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;"),
        ),
        "js" => Value::from(
            args.iter()
                .map(text)
                .collect::<String>()
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('"', "\\\"")
                .replace('<', "\\u003C")
                .replace('>', "\\u003E"),
        ),
        "urlquery" => Value::from(
            args.iter()
                .map(text)
                .collect::<String>()
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".into(),
                    b => format!("%{b:02X}"),
                })
                .collect::<String>(),
        ),
        "quote" => Value::from(
            args.iter()
                .map(|v| go_quote(&text(v)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::from(
            args.iter()
                .map(|v| format!("'{}'", text(v)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "upper" => {
            arity(1)?;
            Value::from(text(&args[0]).to_uppercase())
        }
        "lower" => {
            arity(1)?;
            Value::from(text(&args[0]).to_lowercase())
        }
        "title" => {
            arity(1)?;
            let mut up = true;
            Value::from(
                text(&args[0])
                    .chars()
                    .map(|c| {
                        let out = if up {
                            c.to_uppercase().next().unwrap_or(c)
                        } else {
                            c
                        };
                        up = c.is_whitespace();
                        out
                    })
                    .collect::<String>(),
            )
        }
        "trim" => {
            arity(1)?;
            Value::from(text(&args[0]).trim().to_owned())
        }
        "join" => {
            arity(2)?;
            let list = match &args[1] {
                Value::Array(a) => a.iter().map(text).collect::<Vec<_>>(),
                other => vec![text(other)],
            };
            Value::from(list.join(&text(&args[0])))
        }
        "add" => arith(|a, b| a + b)?,
        "sub" => arith(|a, b| a - b)?,
        "mul" => arith(|a, b| a * b)?,
        "div" => {
            arity(2)?;
            let d = num(&args[1])?;
            if d == 0.0 {
                return Err(bad("div by zero"));
            }
            number((num(&args[0])? / d).trunc())
        }
        "default" => {
            arity(2)?;
            if truthy(&args[1]) {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "toJson" => {
            arity(1)?;
            Value::from(serde_json::to_string(&args[0]).map_err(|e| bad(e.to_string()))?)
        }
        "toPrettyJson" => {
            arity(1)?;
            Value::from(serde_json::to_string_pretty(&args[0]).map_err(|e| bad(e.to_string()))?)
        }
        "now" => {
            arity(0)?;
            Value::from(
                time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| bad(e.to_string()))?,
            )
        }
        "date" => {
            arity(2)?;
            Value::from(go_date(&text(&args[0]), &text(&args[1]))?)
        }
        other => {
            return Err(bad(format!(
                "function {other:?} is not one coffer's templates support (see {docs})"
            )));
        }
    })
}

/// Go's `fmt.Sprintf` for `%s`, `%v`, `%d`, `%q`, `%f`/`%.Nf`, `%%`.
fn printf(fmt: &str, args: &[Value]) -> Result<String, Error> {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            precision = digits.parse::<usize>().ok();
        }
        let verb = chars.next().ok_or_else(|| bad("printf: a % at the end"))?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| bad(format!("printf: no argument for %{verb}")))?;
        match verb {
            's' | 'v' => out.push_str(&match v {
                Value::String(s) => s.clone(),
                other => show(other),
            }),
            'd' => out.push_str(&format!("{}", num(v)? as i64)),
            'f' => out.push_str(&format!("{:.*}", precision.unwrap_or(6), num(v)?)),
            'q' => out.push_str(&go_quote(&match v {
                Value::String(s) => s.clone(),
                other => show(other),
            })),
            other => return Err(bad(format!("printf: %{other} is not supported"))),
        }
    }
    Ok(out)
}

/// sprig's `date LAYOUT TIME` for an RFC 3339 time, with Go's reference
/// layout words (`2006-01-02 15:04:05 MST`, `Jan 02, 2006` ...).
pub fn go_date(layout: &str, when: &str) -> Result<String, Error> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(when, &Rfc3339)
        .map_err(|e| bad(format!("date: {when:?}: {e}")))?;
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let month = MONTHS[usize::from(u8::from(t.month())) - 1];
    let weekday = t.weekday().to_string();
    let tokens: [(&str, String); 15] = [
        ("January", month.to_owned()),
        ("Jan", month[..3].to_owned()),
        ("Monday", weekday.clone()),
        ("Mon", weekday[..3].to_owned()),
        ("2006", format!("{:04}", t.year())),
        (
            "MST",
            if t.offset().is_utc() {
                "UTC".into()
            } else {
                String::new()
            },
        ),
        (
            "Z07:00",
            if t.offset().is_utc() {
                "Z".into()
            } else {
                offset(&t, true)
            },
        ),
        ("-0700", offset(&t, false)),
        ("01", format!("{:02}", u8::from(t.month()))),
        ("02", format!("{:02}", t.day())),
        ("15", format!("{:02}", t.hour())),
        ("03", format!("{:02}", (t.hour() + 11) % 12 + 1)),
        ("04", format!("{:02}", t.minute())),
        ("05", format!("{:02}", t.second())),
        (
            "PM",
            if t.hour() >= 12 {
                "PM".into()
            } else {
                "AM".into()
            },
        ),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (word, value) in &tokens {
            if let Some(r) = rest.strip_prefix(word) {
                out.push_str(value);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

fn offset(t: &time::OffsetDateTime, colon: bool) -> String {
    let o = t.offset();
    let (h, m, _) = o.as_hms();
    let sign = if o.is_negative() { '-' } else { '+' };
    if colon {
        format!("{sign}{:02}:{:02}", h.abs(), m.abs())
    } else {
        format!("{sign}{:02}{:02}", h.abs(), m.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings() -> Value {
        serde_json::json!([
            {"RuleID": "github-pat", "File": "a.env", "StartLine": 2, "Secret": "ghp_\"x\"", "Tags": ["vcs", "github"], "Entropy": 4.5},
            {"RuleID": "npm", "File": "b.env", "StartLine": 7, "Secret": "npm_y", "Tags": [], "Entropy": 3.0}
        ])
    }

    #[test]
    fn a_markdown_table_and_a_json_list_render_as_go_would() {
        let md = "| File | Line | Secret |\n|:-----|-----:|--------|\n{{ range . -}}\n| {{ .File }} | {{ .StartLine }} | {{ quote .Secret }} |\n{{ end -}}\n";
        assert_eq!(
            render(md, &findings(), "docs").expect("render"),
            "| File | Line | Secret |\n|:-----|-----:|--------|\n| a.env | 2 | \"ghp_\\\"x\\\"\" |\n| b.env | 7 | \"npm_y\" |\n"
        );
        let json = "[{{ $last := (sub (len . ) 1) }}\n{{- range $i, $f := . }}{{with $f}}{\"r\": {{ quote .RuleID }}, \"tags\": [{{ $lt := (sub (len .Tags) 1) }}{{ range $j, $t := .Tags }}{{ quote . }}{{ if ne $j $lt }},{{ end }}{{ end }}]}{{ if ne $i $last }},{{ end }}{{ end }}{{ end }}]";
        let out = render(json, &findings(), "docs").expect("render");
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v[0]["tags"], serde_json::json!(["vcs", "github"]));
        assert_eq!(v[1]["r"], "npm");
    }

    #[test]
    fn conditions_functions_and_errors() {
        let t = "{{ len . }} {{ if gt (len .) 1 }}many{{ else }}few{{ end }} {{ (index . 0).File | upper }} {{ join \", \" (index . 0).Tags }} {{ printf \"%s:%d\" (index . 1).File (index . 1).StartLine }}{{/* a comment */}}";
        assert_eq!(
            render(t, &findings(), "docs").expect("render"),
            "2 many A.ENV vcs, github b.env:7"
        );
        assert_eq!(
            render(
                "{{ date \"Jan 02, 2006 15:04\" \"2026-12-04T01:02:03Z\" }}",
                &findings(),
                "docs"
            )
            .expect("date"),
            "Dec 04, 2026 01:02"
        );
        let e = render("{{ shuffle . }}", &findings(), "docs").expect_err("unknown");
        assert!(e.to_string().contains("\"shuffle\""), "{e}");
        assert!(render("{{ range . }}", &findings(), "docs").is_err());
        assert!(render("{{ end }}", &findings(), "docs").is_err());
    }

    #[test]
    fn other_delimiters_and_caller_functions() {
        struct Env;
        impl Functions for Env {
            fn call(&mut self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
                (name == "shout").then(|| match args {
                    [Value::String(s)] => Ok(Value::from(format!("{s}!"))),
                    _ => Err("takes one string".into()),
                })
            }
        }
        let t = Template::parse_with("<< shout .a >> {{ .a }} << .a | shout >>", "<<", ">>")
            .expect("parse");
        let out = t
            .render(&serde_json::json!({"a": "hi"}), &mut Env)
            .expect("render");
        assert_eq!(out, "hi! {{ .a }} hi!");
        let e = Template::parse("{{ shout 1 }}")
            .expect("parse")
            .render(&Value::Null, &mut Env)
            .expect_err("bad argument");
        assert_eq!(e.to_string(), "shout: takes one string");
    }
}
