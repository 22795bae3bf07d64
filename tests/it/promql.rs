//! A small PromQL: Prometheus text read into series, and enough of the query language to read the
//! queries the dashboard, the KEDA scaler and the prometheus-adapter rule run, say which metrics
//! and labels they name, and evaluate them over two scrapes of `/metrics` as Prometheus would over
//! the window between them (`rate()` is the increase between the scrapes over the time between
//! them; `histogram_quantile` interpolates linearly within the bucket, as Prometheus does).
//!
//! Shared by the integration tests and `examples/telemetry.rs` (which includes this file), so
//! it depends on nothing but `std` and `regex`.

#![allow(dead_code)] // Each includer uses part of it.

use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// One sample of Prometheus text: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// The samples of a Prometheus text exposition (comments and `# TYPE` lines skipped).
pub fn parse_text(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(at) => line.split_at(at),
            None => continue,
        };
        let mut labels = Labels::new();
        let mut rest = rest;
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut end = inner.len();
            loop {
                // label="value", with \" \\ \n escapes in the value
                while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                    chars.next();
                }
                match chars.peek() {
                    Some((at, '}')) => {
                        end = *at;
                        break;
                    }
                    None => break,
                    _ => {}
                }
                let mut key = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                chars.next(); // the opening quote
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, other)) => value.push(other),
                            None => {}
                        },
                        '"' => break,
                        other => value.push(other),
                    }
                }
                labels.insert(key.trim().to_owned(), value);
            }
            rest = &inner[(end + 1).min(inner.len())..];
        }
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            number => match number.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// One scrape: its samples, and when it was taken (seconds on any clock shared by the scrapes).
#[derive(Clone, Debug)]
pub struct Scrape {
    pub at: f64,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// `text` scraped at `at`, with `target` labels added to every sample, as Prometheus adds its
    /// target's labels (namespace, pod, and what the ServiceMonitor's relabelings set).
    pub fn new(at: f64, text: &str, target: &Labels) -> Scrape {
        let mut samples = parse_text(text);
        for sample in &mut samples {
            for (key, value) in target {
                sample
                    .labels
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
        Scrape { at, samples }
    }

    /// The label names the samples of `metric` carry (empty if there is no such metric).
    pub fn label_names(&self, metric: &str) -> Option<std::collections::BTreeSet<String>> {
        let mut found = None;
        for sample in self.samples.iter().filter(|s| s.name == metric) {
            found
                .get_or_insert_with(std::collections::BTreeSet::new)
                .extend(sample.labels.keys().cloned());
        }
        found
    }
}

// ---- the language ------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    fn matches(&self, value: Option<&String>) -> bool {
        let value = value.map_or("", String::as_str);
        let full = |pattern: &str| {
            regex::Regex::new(&format!("^(?:{pattern})$"))
                .map(|re| re.is_match(value))
                .unwrap_or(false)
        };
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => full(&self.value),
            MatchOp::NotRegex => !full(&self.value),
        }
    }
}

/// `on (…)` or `ignoring (…)`, and `group_left`/`group_right`, of a binary operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VectorMatching {
    pub on: Option<Vec<String>>,
    pub ignoring: Vec<String>,
    /// `Some(true)` for group_left, `Some(false)` for group_right.
    pub group_left: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    Selector {
        name: String,
        matchers: Vec<Matcher>,
        /// The range of a range selector (`[1m]`), as written.
        range: Option<String>,
    },
    Call {
        function: String,
        args: Vec<Expr>,
    },
    Aggregate {
        op: String,
        /// `by (…)` labels, or `without (…)` labels with `without` true.
        labels: Vec<String>,
        without: bool,
        expr: Box<Expr>,
    },
    Binary {
        op: String,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        matching: VectorMatching,
        /// `bool` after a comparison.
        boolean: bool,
    },
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Number(f64),
    Str(String),
    Range(String),
    Punct(&'static str),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    const PUNCT: &[&str] = &[
        "==", "!=", "=~", "!~", "<=", ">=", "(", ")", "{", "}", ",", "=", "+", "-", "*", "/", "%",
        "^", "<", ">",
    ];
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut value = String::new();
            i += 1;
            while i < bytes.len() && bytes[i] as char != c {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i] as char);
                i += 1;
            }
            i += 1;
            out.push(Token::Str(value));
        } else if c == '[' {
            let end = text[i..].find(']').ok_or("an unclosed [")? + i;
            out.push(Token::Range(text[i + 1..end].to_owned()));
            i = end + 1;
        } else if c.is_ascii_digit()
            || (c == '.' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit())
        {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            let number = &text[start..i];
            out.push(Token::Number(
                number.parse().map_err(|_| format!("bad number {number}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            out.push(Token::Ident(text[start..i].to_owned()));
        } else if let Some(p) = PUNCT.iter().find(|p| text[i..].starts_with(**p)) {
            out.push(Token::Punct(p));
            i += p.len();
        } else {
            return Err(format!("unexpected {c:?} at {i} in {text}"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat(&mut self, punct: &str) -> bool {
        if self.peek() == Some(&Token::Punct(leak(punct))) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, punct: &str) -> Result<(), String> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(format!("expected {punct}, found {:?}", self.peek()))
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn label_list(&mut self) -> Result<Vec<String>, String> {
        self.expect("(")?;
        let mut labels = Vec::new();
        while !self.eat(")") {
            match self.next() {
                Some(Token::Ident(label)) => labels.push(label),
                other => return Err(format!("expected a label, found {other:?}")),
            }
            self.eat(",");
        }
        Ok(labels)
    }

    /// Binary operators by precedence, lowest first.
    const LEVELS: &'static [&'static [&'static str]] = &[
        &["or"],
        &["and", "unless"],
        &["==", "!=", "<=", ">=", "<", ">"],
        &["+", "-"],
        &["*", "/", "%"],
        &["^"],
    ];

    fn expr(&mut self, level: usize) -> Result<Expr, String> {
        if level == Self::LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.expr(level + 1)?;
        loop {
            let op = match self.peek() {
                Some(Token::Punct(p)) if Self::LEVELS[level].contains(p) => p.to_string(),
                Some(Token::Ident(w)) if Self::LEVELS[level].contains(&w.as_str()) => w.clone(),
                _ => return Ok(lhs),
            };
            self.at += 1;
            let boolean = self.keyword("bool");
            let mut matching = VectorMatching::default();
            if self.keyword("on") {
                matching.on = Some(self.label_list()?);
            } else if self.keyword("ignoring") {
                matching.ignoring = self.label_list()?;
            }
            for (word, left) in [("group_left", true), ("group_right", false)] {
                if self.keyword(word) {
                    matching.group_left = Some(left);
                    if self.peek() == Some(&Token::Punct("(")) {
                        self.label_list()?;
                    }
                }
            }
            // `^` is right-associative; the rest are left-associative.
            let rhs = if op == "^" {
                self.expr(level)?
            } else {
                self.expr(level + 1)?
            };
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                matching,
                boolean,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            let inner = self.unary()?;
            return Ok(Expr::Binary {
                op: "*".into(),
                lhs: Box::new(Expr::Number(-1.0)),
                rhs: Box::new(inner),
                matching: VectorMatching::default(),
                boolean: false,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Number(n)) => Ok(Expr::Number(n)),
            Some(Token::Punct("(")) => {
                let inner = self.expr(0)?;
                self.expect(")")?;
                Ok(inner)
            }
            Some(Token::Ident(name)) if AGGREGATIONS.contains(&name.as_str()) => {
                let mut labels = Vec::new();
                let mut without = false;
                let mut grouping = |parser: &mut Parser| -> Result<(), String> {
                    if parser.keyword("by") {
                        labels = parser.label_list()?;
                    } else if parser.keyword("without") {
                        without = true;
                        labels = parser.label_list()?;
                    }
                    Ok(())
                };
                grouping(self)?;
                self.expect("(")?;
                let mut args = vec![self.expr(0)?];
                while self.eat(",") {
                    args.push(self.expr(0)?);
                }
                self.expect(")")?;
                grouping(self)?;
                Ok(Expr::Aggregate {
                    op: name,
                    labels,
                    without,
                    expr: Box::new(args.pop().expect("one argument")),
                })
            }
            Some(Token::Ident(name)) if self.peek() == Some(&Token::Punct("(")) => {
                self.at += 1;
                let mut args = Vec::new();
                while !self.eat(")") {
                    args.push(self.expr(0)?);
                    self.eat(",");
                }
                Ok(Expr::Call {
                    function: name,
                    args,
                })
            }
            Some(Token::Ident(name)) => {
                let mut matchers = Vec::new();
                if self.eat("{") {
                    while !self.eat("}") {
                        let Some(Token::Ident(label)) = self.next() else {
                            return Err("expected a label name in a selector".into());
                        };
                        let op = match self.next() {
                            Some(Token::Punct("=")) => MatchOp::Equal,
                            Some(Token::Punct("!=")) => MatchOp::NotEqual,
                            Some(Token::Punct("=~")) => MatchOp::Regex,
                            Some(Token::Punct("!~")) => MatchOp::NotRegex,
                            other => {
                                return Err(format!("expected a match operator, found {other:?}"));
                            }
                        };
                        let Some(Token::Str(value)) = self.next() else {
                            return Err("expected a string in a selector".into());
                        };
                        matchers.push(Matcher { label, op, value });
                        self.eat(",");
                    }
                }
                let range = match self.peek() {
                    Some(Token::Range(range)) => {
                        let range = range.clone();
                        self.at += 1;
                        Some(range)
                    }
                    _ => None,
                };
                Ok(Expr::Selector {
                    name,
                    matchers,
                    range,
                })
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

/// The static form of a punctuation token (tokens hold `&'static str`).
fn leak(punct: &str) -> &'static str {
    const ALL: &[&str] = &[
        "==", "!=", "=~", "!~", "<=", ">=", "(", ")", "{", "}", ",", "=", "+", "-", "*", "/", "%",
        "^", "<", ">",
    ];
    ALL.iter().find(|p| **p == punct).copied().unwrap_or("")
}

/// Parses one PromQL expression (Grafana variables must be substituted first).
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    let expr = parser.expr(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(extra) => Err(format!(
            "unexpected {extra:?} after the expression in {text}"
        )),
    }
}

impl Expr {
    /// Every selector in the expression: (metric, matchers).
    pub fn selectors(&self) -> Vec<(&str, &[Matcher])> {
        let mut out = Vec::new();
        self.walk(&mut |expr| {
            if let Expr::Selector { name, matchers, .. } = expr {
                out.push((name.as_str(), matchers.as_slice()));
            }
        });
        out
    }

    /// Label names that grouping (`by`, `without`) and vector matching (`on`, `ignoring`) name,
    /// each with the metrics whose series they must be on: those selected under the aggregation,
    /// or on the side of the operation they match.
    pub fn grouping_labels(&self) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        self.walk(&mut |expr| match expr {
            Expr::Aggregate { labels, expr, .. } => {
                let metrics: Vec<String> = expr
                    .selectors()
                    .iter()
                    .map(|(m, _)| m.to_string())
                    .collect();
                for label in labels {
                    out.push((label.clone(), metrics.clone()));
                }
            }
            Expr::Binary {
                lhs, rhs, matching, ..
            } => {
                let labels = matching.on.iter().flatten().chain(&matching.ignoring);
                for label in labels {
                    for side in [lhs, rhs] {
                        let metrics: Vec<String> = side
                            .selectors()
                            .iter()
                            .map(|(m, _)| m.to_string())
                            .collect();
                        out.push((label.clone(), metrics));
                    }
                }
            }
            _ => {}
        });
        out
    }

    fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        match self {
            Expr::Call { args, .. } => args.iter().for_each(|a| a.walk(visit)),
            Expr::Aggregate { expr, .. } => expr.walk(visit),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.walk(visit);
                rhs.walk(visit);
            }
            Expr::Number(_) | Expr::Selector { .. } => {}
        }
    }
}

// ---- evaluation --------------------------------------------------------------------------------

/// A result: a number, or series (labels without the metric name) with values.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
}

impl Value {
    /// The one value of a scalar or of a vector of one series.
    pub fn single(&self) -> Option<f64> {
        match self {
            Value::Scalar(v) => Some(*v),
            Value::Vector(series) if series.len() == 1 => Some(series[0].1),
            Value::Vector(_) => None,
        }
    }
}

/// Evaluates `expr` at the time of `later`, with range functions over the window from
/// `earlier` to `later` (the range written in the query is taken to be that window).
pub fn eval(expr: &Expr, earlier: &Scrape, later: &Scrape) -> Result<Value, String> {
    Ok(match expr {
        Expr::Number(n) => Value::Scalar(*n),
        Expr::Selector {
            name,
            matchers,
            range: None,
        } => Value::Vector(select(later, name, matchers)),
        Expr::Selector { range: Some(_), .. } => {
            return Err("a range selector outside rate() or increase()".into());
        }
        Expr::Call { function, args } => call(function, args, earlier, later)?,
        Expr::Aggregate {
            op,
            labels,
            without,
            expr,
        } => {
            let Value::Vector(series) = eval(expr, earlier, later)? else {
                return Err(format!("{op} of a scalar"));
            };
            let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
            for (series_labels, value) in series {
                let key: Labels = series_labels
                    .into_iter()
                    .filter(|(k, _)| labels.contains(k) != *without)
                    .collect();
                groups.entry(key).or_default().push(value);
            }
            let fold = |values: &[f64]| -> Result<f64, String> {
                Ok(match op.as_str() {
                    "sum" => values.iter().sum(),
                    "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
                    "count" => values.len() as f64,
                    "avg" => values.iter().sum::<f64>() / values.len() as f64,
                    "group" => 1.0,
                    other => return Err(format!("{other} is not supported")),
                })
            };
            Value::Vector(
                groups
                    .into_iter()
                    .map(|(k, values)| Ok((k, fold(&values)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            matching,
            boolean,
        } => binary(
            op,
            eval(lhs, earlier, later)?,
            eval(rhs, earlier, later)?,
            matching,
            *boolean,
        )?,
    })
}

fn select(scrape: &Scrape, name: &str, matchers: &[Matcher]) -> Vec<(Labels, f64)> {
    scrape
        .samples
        .iter()
        .filter(|s| s.name == name && matchers.iter().all(|m| m.matches(s.labels.get(&m.label))))
        .map(|s| (s.labels.clone(), s.value))
        .collect()
}

fn call(function: &str, args: &[Expr], earlier: &Scrape, later: &Scrape) -> Result<Value, String> {
    match (function, args) {
        (
            "rate" | "increase",
            [
                Expr::Selector {
                    name,
                    matchers,
                    range: Some(_),
                },
            ],
        ) => {
            let before = select(earlier, name, matchers);
            let seconds = later.at - earlier.at;
            let mut out = Vec::new();
            for (labels, now) in select(later, name, matchers) {
                // A series that was not in the earlier scrape has one sample in the window:
                // Prometheus computes no rate from it (its first increments are lost).
                let Some((_, then)) = before.iter().find(|(l, _)| *l == labels) else {
                    continue;
                };
                // A counter that went down was reset (a restart): it counted `now` since.
                let increase = if now >= *then { now - then } else { now };
                out.push((
                    labels,
                    if function == "rate" {
                        increase / seconds
                    } else {
                        increase
                    },
                ));
            }
            Ok(Value::Vector(out))
        }
        ("vector", [arg]) => match eval(arg, earlier, later)? {
            Value::Scalar(v) => Ok(Value::Vector(vec![(Labels::new(), v)])),
            Value::Vector(_) => Err("vector() of a vector".into()),
        },
        ("histogram_quantile", [q, buckets]) => {
            let Value::Scalar(q) = eval(q, earlier, later)? else {
                return Err("histogram_quantile's first argument is a number".into());
            };
            let Value::Vector(series) = eval(buckets, earlier, later)? else {
                return Err("histogram_quantile of a scalar".into());
            };
            let mut histograms: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for (mut labels, count) in series {
                let Some(le) = labels.remove("le") else {
                    continue;
                };
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().map_err(|_| format!("bad le {le}"))?
                };
                histograms.entry(labels).or_default().push((le, count));
            }
            Ok(Value::Vector(
                histograms
                    .into_iter()
                    .filter_map(|(labels, buckets)| Some((labels, histogram_quantile(q, buckets)?)))
                    .collect(),
            ))
        }
        (other, _) => Err(format!("{other}() is not supported here")),
    }
}

/// Prometheus's `histogram_quantile` for one histogram: (upper bound, cumulative count) pairs,
/// the last with bound +Inf. The rank `q × count` is found in its bucket, and the value is
/// interpolated linearly between the bucket's bounds (from 0 for the first bucket); a rank in
/// the +Inf bucket gives the highest finite bound. `None` when there are no observations.
pub fn histogram_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> Option<f64> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) || buckets.len() < 2 {
        return None;
    }
    // Cumulative counts must not go down (Prometheus fixes the small non-monotonicities that
    // scraping a histogram being written can show the same way).
    for i in 1..buckets.len() {
        buckets[i].1 = buckets[i].1.max(buckets[i - 1].1);
    }
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    let rank = q * total;
    let at = buckets.iter().position(|(_, count)| *count >= rank)?;
    if at == buckets.len() - 1 {
        return Some(buckets[at - 1].0);
    }
    let (end, count) = buckets[at];
    let (start, before) = if at == 0 { (0.0, 0.0) } else { buckets[at - 1] };
    if at == 0 && end <= 0.0 {
        return Some(end);
    }
    Some(start + (end - start) * (rank - before) / (count - before))
}

fn binary(
    op: &str,
    lhs: Value,
    rhs: Value,
    matching: &VectorMatching,
    boolean: bool,
) -> Result<Value, String> {
    let arithmetic = |a: f64, b: f64| -> Option<f64> {
        Some(match op {
            "+" => a + b,
            "-" => a - b,
            "*" => a * b,
            "/" => a / b,
            "%" => a % b,
            "^" => a.powf(b),
            _ => return None,
        })
    };
    let compare = |a: f64, b: f64| -> Option<bool> {
        Some(match op {
            "==" => a == b,
            "!=" => a != b,
            "<" => a < b,
            ">" => a > b,
            "<=" => a <= b,
            ">=" => a >= b,
            _ => return None,
        })
    };
    // Applies `op` to a pair; `None` drops the series (a comparison that fails).
    let apply = |a: f64, b: f64, keep: f64| -> Result<Option<f64>, String> {
        if let Some(v) = arithmetic(a, b) {
            return Ok(Some(v));
        }
        match compare(a, b) {
            Some(true) => Ok(Some(if boolean { 1.0 } else { keep })),
            Some(false) => Ok(boolean.then_some(0.0)),
            None => Err(format!("{op} between these operands is not supported")),
        }
    };
    let key = |labels: &Labels| -> Labels {
        match &matching.on {
            Some(on) => labels
                .iter()
                .filter(|(k, _)| on.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            None => labels
                .iter()
                .filter(|(k, _)| !matching.ignoring.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    };
    Ok(match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            Value::Scalar(apply(a, b, a)?.ok_or("a scalar comparison without bool")?)
        }
        (Value::Vector(series), Value::Scalar(b)) => Value::Vector(
            series
                .into_iter()
                .filter_map(|(l, a)| apply(a, b, a).transpose().map(|v| v.map(|v| (l, v))))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Scalar(a), Value::Vector(series)) => Value::Vector(
            series
                .into_iter()
                .filter_map(|(l, b)| apply(a, b, b).transpose().map(|v| v.map(|v| (l, v))))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Vector(left), Value::Vector(right)) => match op {
            "or" => {
                let mut out = left.clone();
                let seen: Vec<Labels> = left.iter().map(|(l, _)| key(l)).collect();
                out.extend(right.into_iter().filter(|(l, _)| !seen.contains(&key(l))));
                Value::Vector(out)
            }
            "and" | "unless" => {
                let present: Vec<Labels> = right.iter().map(|(l, _)| key(l)).collect();
                Value::Vector(
                    left.into_iter()
                        .filter(|(l, _)| present.contains(&key(l)) == (op == "and"))
                        .collect(),
                )
            }
            _ => {
                // One-to-one, or many-to-one with group_left (the left side's labels kept).
                let mut out = Vec::new();
                let (many, one, left_is_many) = match matching.group_left {
                    Some(false) => (right, left, false),
                    _ => (left, right, true),
                };
                for (labels, v) in many {
                    let Some((_, w)) = one.iter().find(|(l, _)| key(l) == key(&labels)) else {
                        continue;
                    };
                    let (a, b) = if left_is_many { (v, *w) } else { (*w, v) };
                    if let Some(value) = apply(a, b, a)? {
                        let labels = if matching.group_left.is_some() {
                            labels
                        } else {
                            key(&labels)
                        };
                        out.push((labels, value));
                    }
                }
                Value::Vector(out)
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_text_with_escapes() {
        let samples = parse_text(
            "# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 3\nup 1\nh_bucket{le=\"+Inf\"} 7\n",
        );
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["b"], "q\"uote");
        assert_eq!(samples[1].name, "up");
        assert_eq!(samples[2].labels["le"], "+Inf");
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_as_prometheus_does() {
        // 10 in (0, 1], 10 in (1, 2]: the median is the top of the first bucket, p75 halfway
        // through the second.
        let buckets = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(histogram_quantile(0.5, buckets.clone()), Some(1.0));
        assert_eq!(histogram_quantile(0.75, buckets.clone()), Some(1.5));
        assert_eq!(histogram_quantile(0.25, buckets), Some(0.5));
        assert_eq!(
            histogram_quantile(0.99, vec![(1.0, 1.0), (f64::INFINITY, 5.0)]),
            Some(1.0),
            "a rank in +Inf gives the highest finite bound"
        );
    }

    #[test]
    fn evaluates_rates_sums_and_joins_over_two_scrapes() {
        let target = Labels::from([("pod".to_owned(), "p1".to_owned())]);
        let earlier = Scrape::new(
            0.0,
            "r_total{route=\"/\"} 10\nr_total{route=\"/x\"} 5\n",
            &target,
        );
        let later = Scrape::new(
            10.0,
            "r_total{route=\"/\"} 30\nr_total{route=\"/x\"} 5\nr_total{route=\"/new\"} 4\n",
            &target,
        );
        let value = |q: &str| eval(&parse(q).unwrap(), &earlier, &later).unwrap();
        assert_eq!(value("sum(rate(r_total[1m]))").single(), Some(2.0));
        assert_eq!(
            value("sum(rate(r_total{route!~\"/x|/y\"}[1m])) * 60 / 2").single(),
            Some(60.0)
        );
        assert_eq!(value("sum(increase(r_total[1m]))").single(), Some(20.0));
        assert_eq!(
            value("sum by (pod) (rate(r_total[1m]))"),
            Value::Vector(vec![(target.clone(), 2.0)])
        );
        assert_eq!(
            value("sum(rate(nothing_total[1m])) or vector(0)").single(),
            Some(0.0)
        );
        let join = parse("sum(r_total * on (pod) group_left () (max by (pod) (r_total)))").unwrap();
        assert_eq!(
            join.grouping_labels()
                .iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>(),
            ["pod", "pod", "pod"]
        );
    }
}
