//! Limits on tenant policy text, checked before regorus sees it.
//!
//! A tenant's `policies/*.rego` is untrusted input to the judge. regorus's
//! parser backtracks: it parses the first element of every `[`/`{` once as a
//! comprehension term and again as a literal, so each such bracket nested in
//! the first element of another doubles the work (22 levels of `[[[…]]]`, 83
//! bytes, parse for hours). Numeric literals become big integers at parse
//! time (`1e999999999` is a 400 MB number), and some builtins turn a few
//! bytes of arguments into gigabytes (`numbers.range(1, 1e9)`).
//!
//! [`scan_bundle`] runs a small lexer over each file — it knows strings, raw
//! strings and comments, so a bracket inside a string is not a bracket — and
//! refuses, with file:line:column, anything over [`LIMITS`]:
//!
//! - size: bytes per file and for all files, lines, characters per line,
//!   number of files;
//! - nesting: brackets of any kind, and *ambiguous* nesting (`[`/`{` still in
//!   its first element, where regorus backtracks);
//! - parse work: each token weighs 2 to the power of its ambiguous nesting,
//!   the number of times regorus may parse it; the sum per file and for the
//!   bundle is bounded, so the worst parse is a few hundred milliseconds;
//! - rules per file and for the bundle;
//! - numeric literals of more than [`Limits::max_number_digits`] digits or an
//!   exponent beyond ±[`Limits::max_number_exponent`];
//! - calls to the builtins in [`REFUSED_BUILTINS`]: those whose result has
//!   no size bound from the size of their arguments, and those that read the
//!   world (clock, randomness, environment, network) and would make a
//!   judgement impossible to reproduce.
//!
//! What the scan cannot see (values that grow at evaluation time) is bounded
//! by the evaluation time limit and, in the `ringmaster` binary, by the
//! guarded worker process that evaluates tenant rules under a memory limit
//! (`crate::sandbox`). The module is pure: text in, findings out.

use super::PolicyError;
use crate::diagnostic::Position;

/// The limits a tenant policy bundle must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one policy file.
    pub max_file_bytes: usize,
    /// Bytes of every tenant policy file together.
    pub max_total_bytes: usize,
    /// Tenant policy files.
    pub max_files: usize,
    /// Lines of one file.
    pub max_lines: usize,
    /// Characters of one line (regorus itself refuses more than 1024).
    pub max_line_chars: usize,
    /// Open brackets of any kind — `(`, `[`, `{` — at one point.
    pub max_nesting: usize,
    /// Open `[`/`{` brackets still in their first element at one point: the
    /// brackets regorus may parse twice.
    pub max_ambiguous_nesting: usize,
    /// Parse work of one file: Σ over tokens of 2^(ambiguous nesting).
    pub max_parse_work_per_file: u64,
    /// Parse work of the whole bundle.
    pub max_parse_work_total: u64,
    /// Rule definitions (statements at the top level of a file) per file.
    pub max_rules_per_file: usize,
    /// Rule definitions in the whole bundle.
    pub max_rules_total: usize,
    /// Digits of a numeric literal.
    pub max_number_digits: usize,
    /// Magnitude of a numeric literal's decimal exponent.
    pub max_number_exponent: u32,
}

/// The limits in force. Generous for hand-written rules (the sample
/// tenant's policy is 2 KiB, 9 rules, ambiguous nesting 3, parse work ~1,500);
/// tight enough that the worst file parses in well under a second.
/// `benches/policy_limits.rs` measures the scan and the worst parse.
pub const LIMITS: Limits = Limits {
    max_file_bytes: 64 * 1024,
    max_total_bytes: 512 * 1024,
    max_files: 64,
    max_lines: 5_000,
    max_line_chars: 1_000,
    max_nesting: 16,
    max_ambiguous_nesting: 8,
    max_parse_work_per_file: 60_000,
    max_parse_work_total: 240_000,
    max_rules_per_file: 500,
    max_rules_total: 2_000,
    max_number_digits: 40,
    max_number_exponent: 308,
};

/// Builtins a tenant policy may not call, and why.
pub const REFUSED_BUILTINS: &[(&str, &str)] = &[
    (
        "numbers.range",
        "its result has no size bound (numbers.range(1, 1e9) is a billion numbers); iterate over the input's own collections instead",
    ),
    (
        "numbers.range_step",
        "its result has no size bound; iterate over the input's own collections instead",
    ),
    (
        "net.cidr_expand",
        "its result has no size bound (a /8 is 16 million addresses); use net.cidr_contains instead",
    ),
    (
        "graph.reachable_paths",
        "the number of paths grows exponentially with the graph; use graph.reachable instead",
    ),
    (
        "bits.lsh",
        "a shift makes numbers of any size (bits.lsh(1, 4e9) is 500 MB)",
    ),
    (
        "time.now_ns",
        "a judgement must be reproducible; use input.now (the instant the judge was given), e.g. time.parse_rfc3339_ns(input.now)",
    ),
    (
        "rand.intn",
        "a judgement must be reproducible; randomness makes it differ between runs",
    ),
    (
        "uuid.rfc4122",
        "a judgement must be reproducible; random UUIDs make it differ between runs",
    ),
    (
        "opa.runtime",
        "it exposes the judge's environment (variables, configuration) to the repository",
    ),
    ("http.send", "a judgement may not reach the network"),
    ("test.sleep", "it stalls the judge"),
    (
        "print",
        "it writes to the judge's own output; put what you need to say in a finding's message",
    ),
];

/// What the scan measured of one file, when it is within the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileMeasure {
    pub bytes: usize,
    pub lines: usize,
    pub rules: usize,
    pub max_nesting: usize,
    pub max_ambiguous_nesting: usize,
    pub parse_work: u64,
}

/// Checks every tenant file and the bundle as a whole. Returns every finding
/// (each file's first over-limit finding of each kind), empty when the
/// bundle is within [`LIMITS`].
pub fn scan_bundle(files: &[(String, String)]) -> Vec<PolicyError> {
    scan_bundle_with(files, &LIMITS)
}

/// [`scan_bundle`] against other limits (tests, benchmarks).
pub fn scan_bundle_with(files: &[(String, String)], limits: &Limits) -> Vec<PolicyError> {
    let mut errors = Vec::new();
    if files.len() > limits.max_files {
        let (path, _) = &files[limits.max_files];
        errors.push(limit_error(
            path,
            Position { line: 1, column: 1 },
            format!(
                "the repository has {} tenant policy files; at most {} are allowed (merge related rules into one file)",
                files.len(),
                limits.max_files
            ),
        ));
    }
    let mut total_bytes = 0usize;
    let mut total_rules = 0usize;
    let mut total_work = 0u64;
    for (path, source) in files {
        match scan_file_with(path, source, limits) {
            Ok(measure) => {
                total_bytes += measure.bytes;
                total_rules += measure.rules;
                total_work = total_work.saturating_add(measure.parse_work);
                let whole = Position { line: 1, column: 1 };
                if total_bytes > limits.max_total_bytes {
                    errors.push(limit_error(
                        path,
                        whole,
                        format!(
                            "tenant policy files reach {total_bytes} bytes with this one; at most {} bytes in all are allowed",
                            limits.max_total_bytes
                        ),
                    ));
                    total_bytes = 0;
                }
                if total_rules > limits.max_rules_total {
                    errors.push(limit_error(
                        path,
                        whole,
                        format!(
                            "tenant policy files reach {total_rules} rules with this one; at most {} rules in all are allowed",
                            limits.max_rules_total
                        ),
                    ));
                    total_rules = 0;
                }
                if total_work > limits.max_parse_work_total {
                    errors.push(limit_error(
                        path,
                        whole,
                        format!(
                            "tenant policy files reach a parse work of {total_work} with this one; at most {} in all is allowed (flatter literals parse in less)",
                            limits.max_parse_work_total
                        ),
                    ));
                    total_work = 0;
                }
            }
            Err(mut found) => errors.append(&mut found),
        }
    }
    errors
}

/// Checks one file against [`LIMITS`].
pub fn scan_file(path: &str, source: &str) -> Result<FileMeasure, Vec<PolicyError>> {
    scan_file_with(path, source, &LIMITS)
}

/// Checks one file against `limits`: every kind of finding at its first place.
pub fn scan_file_with(
    path: &str,
    source: &str,
    limits: &Limits,
) -> Result<FileMeasure, Vec<PolicyError>> {
    let mut findings = Findings::default();
    if source.len() > limits.max_file_bytes {
        // Do not even lex a file this large.
        return Err(vec![limit_error(
            path,
            Position { line: 1, column: 1 },
            format!(
                "the file has {} bytes; a tenant policy file may have at most {} (split it, or drop generated data)",
                source.len(),
                limits.max_file_bytes
            ),
        )]);
    }
    let mut measure = FileMeasure {
        bytes: source.len(),
        ..FileMeasure::default()
    };
    for (index, line) in source.split('\n').enumerate() {
        let characters = line.chars().count();
        if characters > limits.max_line_chars {
            findings.once(
                Kind::LineLength,
                Position {
                    line: index + 1,
                    column: limits.max_line_chars + 1,
                },
                format!(
                    "line {} has {characters} characters; at most {} are allowed",
                    index + 1,
                    limits.max_line_chars
                ),
            );
        }
        measure.lines = index + 1;
    }
    if measure.lines > limits.max_lines {
        findings.once(
            Kind::Lines,
            Position {
                line: limits.max_lines + 1,
                column: 1,
            },
            format!(
                "the file has {} lines; at most {} are allowed",
                measure.lines, limits.max_lines
            ),
        );
    }

    let mut scanner = Scanner::new(source);
    let mut open: Vec<Open> = Vec::new();
    // The last three significant tokens, for call detection (`a.b(`).
    let mut name: Option<(String, Position)> = None;
    let mut previous_was_dot = false;
    let mut previous_line = 0usize;
    while let Some(token) = scanner.next_token() {
        let ambiguous = open.iter().filter(|bracket| bracket.ambiguous).count();
        measure.parse_work = measure.parse_work.saturating_add(1u64 << ambiguous.min(62));
        let first_on_line = token.position.line != previous_line;
        previous_line = token.position.line;

        match &token.kind {
            TokenKind::Identifier(text) => {
                if open.is_empty()
                    && first_on_line
                    && !matches!(text.as_str(), "package" | "import" | "else")
                {
                    measure.rules += 1;
                    if measure.rules == limits.max_rules_per_file + 1 {
                        findings.once(
                            Kind::Rules,
                            token.position,
                            format!(
                                "the file defines more than {} rules; split it into several files",
                                limits.max_rules_per_file
                            ),
                        );
                    }
                }
                name = match (name.take(), previous_was_dot) {
                    (Some((mut dotted, start)), true) => {
                        dotted.push('.');
                        dotted.push_str(text);
                        Some((dotted, start))
                    }
                    (_, false) => Some((text.clone(), token.position)),
                    (None, true) => None,
                };
                previous_was_dot = false;
                continue;
            }
            TokenKind::Punctuation('.') if name.is_some() => {
                previous_was_dot = true;
                continue;
            }
            TokenKind::Punctuation('(') => {
                if let Some((called, start)) = &name
                    && let Some((_, why)) = REFUSED_BUILTINS
                        .iter()
                        .find(|(builtin, _)| builtin == called)
                {
                    findings.push(
                        *start,
                        format!("tenant policies may not call {called}: {why}"),
                    );
                }
            }
            TokenKind::Number(text) => {
                if let Some(problem) = number_problem(text, limits) {
                    findings.push(token.position, problem);
                }
            }
            _ => {}
        }
        name = None;
        previous_was_dot = false;

        match token.kind {
            TokenKind::Punctuation(bracket @ ('(' | '[' | '{')) => {
                let nested_ambiguous = ambiguous + usize::from(bracket != '(');
                open.push(Open {
                    ambiguous: bracket != '(',
                });
                measure.max_nesting = measure.max_nesting.max(open.len());
                measure.max_ambiguous_nesting = measure.max_ambiguous_nesting.max(nested_ambiguous);
                if open.len() > limits.max_nesting {
                    findings.once(
                        Kind::Nesting,
                        token.position,
                        format!(
                            "brackets nest {} deep here; at most {} levels are allowed",
                            open.len(),
                            limits.max_nesting
                        ),
                    );
                }
                if nested_ambiguous > limits.max_ambiguous_nesting {
                    findings.once(
                        Kind::AmbiguousNesting,
                        token.position,
                        format!(
                            "`{bracket}` opens inside the first element of {} enclosing [ or {{ brackets; at most {} are allowed, because each one doubles the parser's work (give the literal a name, or put a simpler element first)",
                            nested_ambiguous - 1,
                            limits.max_ambiguous_nesting
                        ),
                    );
                }
            }
            TokenKind::Punctuation(')' | ']' | '}') => {
                open.pop();
            }
            TokenKind::Punctuation(',') => {
                if let Some(innermost) = open.last_mut() {
                    innermost.ambiguous = false;
                }
            }
            _ => {}
        }
        if measure.parse_work > limits.max_parse_work_per_file {
            findings.once(
                Kind::ParseWork,
                token.position,
                format!(
                    "the file's parse work passes {} here (each token counts 2 to the power of the [ or {{ brackets it is in the first element of); flatten nested literals or split the file",
                    limits.max_parse_work_per_file
                ),
            );
        }
    }
    if findings.errors.is_empty() {
        Ok(measure)
    } else {
        Err(findings
            .errors
            .into_iter()
            .map(|(position, message)| limit_error(path, position, message))
            .collect())
    }
}

fn limit_error(path: &str, position: Position, message: String) -> PolicyError {
    PolicyError::LimitExceeded {
        file: path.to_string(),
        position,
        message,
    }
}

/// Why a numeric literal is refused, if it is.
fn number_problem(text: &str, limits: &Limits) -> Option<String> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(index) => (&text[..index], Some(&text[index + 1..])),
        None => (text, None),
    };
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
    if digits > limits.max_number_digits {
        return Some(format!(
            "the number {}… has {digits} digits; at most {} are allowed",
            &text[..12.min(text.len())],
            limits.max_number_digits
        ));
    }
    let exponent = exponent?;
    let magnitude = exponent.trim_start_matches(['+', '-']);
    let too_large = magnitude.len() > 9
        || magnitude
            .parse::<u32>()
            .map_or(true, |value| value > limits.max_number_exponent);
    too_large.then(|| {
        format!(
            "the number {text} has an exponent beyond ±{}; regorus would build it as an integer of that many digits",
            limits.max_number_exponent
        )
    })
}

/// One open bracket.
struct Open {
    /// A `[` or `{` that has not yet seen a `,` of its own: its first element
    /// may be parsed twice.
    ambiguous: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LineLength,
    Lines,
    Nesting,
    AmbiguousNesting,
    ParseWork,
    Rules,
}

/// Findings of one file: each kind of limit reported once, at its first place.
#[derive(Default)]
struct Findings {
    reported: Vec<Kind>,
    errors: Vec<(Position, String)>,
}

impl Findings {
    fn once(&mut self, kind: Kind, position: Position, message: String) {
        if !self.reported.contains(&kind) {
            self.reported.push(kind);
            self.errors.push((position, message));
        }
    }

    fn push(&mut self, position: Position, message: String) {
        self.errors.push((position, message));
    }
}

/// A token of the scan: only what the limits need.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    Identifier(String),
    Number(String),
    /// A string or raw string; its text does not matter.
    String,
    /// One character of punctuation; `:=`, `==`, `!=`, `<=`, `>=` arrive as
    /// their first character, which is all the scan looks at.
    Punctuation(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: TokenKind,
    position: Position,
}

/// A lexer over Rego text that knows comments, strings and raw strings.
struct Scanner<'a> {
    characters: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
    column: usize,
}

impl<'a> Scanner<'a> {
    fn new(source: &'a str) -> Scanner<'a> {
        Scanner {
            characters: source.char_indices().peekable(),
            line: 1,
            column: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let (_, character) = self.characters.next()?;
        if character == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(character)
    }

    fn peek(&mut self) -> Option<char> {
        self.characters.peek().map(|(_, character)| *character)
    }

    fn next_token(&mut self) -> Option<Token> {
        loop {
            let character = self.peek()?;
            let position = Position {
                line: self.line,
                column: self.column,
            };
            match character {
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                c if c.is_whitespace() => {
                    self.bump();
                }
                '"' => {
                    self.bump();
                    // A string ends at its closing quote or, unterminated, at
                    // the end of the line (regorus reports that as a syntax error).
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                        if c == '\\' {
                            if self.peek().is_some_and(|next| next != '\n') {
                                self.bump();
                            }
                        } else if c == '"' {
                            break;
                        }
                    }
                    return Some(Token {
                        kind: TokenKind::String,
                        position,
                    });
                }
                '`' => {
                    self.bump();
                    while let Some(c) = self.bump() {
                        if c == '`' {
                            break;
                        }
                    }
                    return Some(Token {
                        kind: TokenKind::String,
                        position,
                    });
                }
                c if c.is_ascii_digit() => {
                    let mut text = String::new();
                    let mut previous = ' ';
                    while let Some(c) = self.peek() {
                        let sign_of_exponent =
                            matches!(c, '+' | '-') && matches!(previous, 'e' | 'E');
                        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || sign_of_exponent {
                            text.push(c);
                            previous = c;
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    return Some(Token {
                        kind: TokenKind::Number(text),
                        position,
                    });
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut text = String::new();
                    while let Some(c) = self.peek() {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            text.push(c);
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    return Some(Token {
                        kind: TokenKind::Identifier(text),
                        position,
                    });
                }
                c => {
                    self.bump();
                    return Some(Token {
                        kind: TokenKind::Punctuation(c),
                        position,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(source: &str) -> Vec<String> {
        match scan_file("policies/t.rego", source) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn measure(source: &str) -> FileMeasure {
        scan_file("policies/t.rego", source).expect("within the limits")
    }

    const HEADER: &str = "package ringmaster.tenant\nimport rego.v1\n";

    #[test]
    fn nested_brackets_are_refused_at_their_place() {
        let source = format!("{HEADER}x := {}{}\n", "[".repeat(22), "]".repeat(22));
        let found = findings(&source);
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("policies/t.rego:3:") && f.contains("first element")),
            "{found:?}"
        );
    }

    #[test]
    fn brackets_inside_strings_and_comments_do_not_count() {
        let inner = "[".repeat(40);
        let source = format!("{HEADER}# {inner}\nx := \"{inner}\"\ny := `{inner}\n{inner}`\n");
        let measured = measure(&source);
        assert_eq!(measured.max_nesting, 0);
        assert_eq!(measured.rules, 2);
    }

    #[test]
    fn escaped_quote_does_not_end_a_string() {
        let source = format!("{HEADER}x := \"\\\" {}\"\n", "[".repeat(30));
        assert_eq!(measure(&source).max_nesting, 0);
    }

    #[test]
    fn a_comma_ends_ambiguity() {
        // Only the first element of a literal is parsed twice.
        let source = format!("{HEADER}x := {}1{}\n", "[1, ".repeat(12), "]".repeat(12));
        let measured = measure(&source);
        assert_eq!(measured.max_nesting, 12);
        assert_eq!(measured.max_ambiguous_nesting, 1);
    }

    #[test]
    fn deep_objects_sets_and_comprehensions_are_refused() {
        for (open, close) in [
            ("{\"a\": ", "}"),
            ("{", "}"),
            ("[y | y := ", "]"),
            ("{y | y := ", "}"),
            ("{y: 1 | y := ", "}"),
            ("(", ")"),
        ] {
            let source = format!("{HEADER}x := {}1{}\n", open.repeat(20), close.repeat(20));
            assert!(!findings(&source).is_empty(), "{open}");
        }
    }

    #[test]
    fn refused_builtins_are_found_through_spacing_and_comments() {
        let source = format!(
            "{HEADER}x := numbers . range(1, 1e9)\ny := count(numbers.range(1,2))\nz := time.now_ns()\nok := sprintf(\"%d\", [count(input.intent.target_scope.rings)])\nw := \"numbers.range(1, 2)\"\n"
        );
        let found = findings(&source);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("policies/t.rego:3:6:"), "{found:?}");
        assert!(found[1].starts_with("policies/t.rego:4:12:"), "{found:?}");
        assert!(found[2].contains("time.now_ns"), "{found:?}");
    }

    #[test]
    fn a_member_named_like_a_builtin_is_not_a_call() {
        let source = format!("{HEADER}x := input.numbers.range\n");
        assert!(findings(&source).is_empty());
    }

    #[test]
    fn huge_number_literals_are_refused() {
        assert!(!findings(&format!("{HEADER}x := 1e999999999\n")).is_empty());
        assert!(!findings(&format!("{HEADER}x := 1E+400\n")).is_empty());
        assert!(!findings(&format!("{HEADER}x := {}\n", "9".repeat(50))).is_empty());
        assert!(findings(&format!("{HEADER}x := 1.5e300\ny := 12345\n")).is_empty());
    }

    #[test]
    fn size_lines_and_rule_counts_are_bounded() {
        let big = format!("{HEADER}{}", "# x\n".repeat(20_000));
        assert!(findings(&big)[0].contains("bytes"));
        let many_lines = format!("{HEADER}{}", "\n".repeat(6_000));
        assert!(findings(&many_lines)[0].contains("lines"));
        let long_line = format!("{HEADER}x := \"{}\"\n", "a".repeat(1_200));
        assert!(findings(&long_line)[0].contains("characters"));
        let rules = format!("{HEADER}{}", "r := 1\n".repeat(600));
        let found = findings(&rules);
        assert!(found[0].contains("more than 500 rules"), "{found:?}");
    }

    #[test]
    fn the_sample_tenant_policy_is_well_within_the_limits() {
        let source = include_str!("../../sample-repo/policies/tenant.rego");
        let measured = measure(source);
        assert!(measured.parse_work < LIMITS.max_parse_work_per_file / 20);
        assert!(measured.max_ambiguous_nesting <= 4, "{measured:?}");
    }

    #[test]
    fn the_bundle_limits_add_files_up() {
        let file = format!("{HEADER}{}", "r := 1\n".repeat(400));
        let files: Vec<(String, String)> = (0..6)
            .map(|index| (format!("policies/{index}.rego"), file.clone()))
            .collect();
        let found = scan_bundle(&files);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].to_string().starts_with("policies/5.rego:1:1:"));
        let many: Vec<(String, String)> = (0..70)
            .map(|index| (format!("policies/{index}.rego"), HEADER.to_string()))
            .collect();
        assert!(
            scan_bundle(&many)[0]
                .to_string()
                .contains("70 tenant policy files")
        );
    }
}
