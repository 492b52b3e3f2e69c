//! Route rules for `/auth/forward` (SPEC §4.1): a gateway reports the client's method and URI,
//! and a rule maps them to the action and resource to check, so one file describes a whole API
//! instead of one gateway block per route.
//!
//! ```toml
//! [[rule]]
//! method = "PUT"                                   # a method, a list, or "*"
//! path = "/api/projects/{project}/envs/{env}/flags/{flag}"
//! action = "UpdateFlagName"
//! resource = "project/{project}:env/{env}:flag/{flag}"
//! ```
//!
//! The first rule that matches decides; a request no rule matches is refused by the caller.
//! A `{name}` stands for exactly one path segment, percent-decoded. Its value goes into a resource
//! name, so it must not carry the resource-name syntax (`:` `;` `,` `*` `/`): `project/{p}` with
//! `p = "web:env/prod"` would otherwise name a different resource than the one the upstream API
//! acts on. Such a request matches no rule.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

/// Most rules a file may hold; each request is matched against them in order.
pub const MAX_RULES: usize = 10_000;

/// The rules, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct RouteRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    methods: Methods,
    path: Vec<Segment>,
    action: String,
    resource: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Methods {
    Any,
    These(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Variable(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Variable(String),
}

/// What a matching rule asks the caller to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub action: String,
    pub resource: String,
}

/// Why a rules file was refused, naming the rule (counted from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError(pub String);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RulesError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    method: RawMethods,
    path: String,
    action: String,
    resource: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMethods {
    One(String),
    Many(Vec<String>),
}

impl RouteRules {
    /// Parses a rules file (TOML). Every problem is reported at start, never at request time.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: File =
            toml::from_str(text).map_err(|e| RulesError(format!("route rules: {e}")))?;
        if file.rule.len() > MAX_RULES {
            return Err(RulesError(format!(
                "route rules: {} rules, at most {MAX_RULES}",
                file.rule.len()
            )));
        }
        let rules = file
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                Rule::parse(raw).map_err(|e| RulesError(format!("route rule {}: {e}", i + 1)))
            })
            .collect::<Result<_, _>>()?;
        Ok(RouteRules { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every action the rules name, so the caller can check them against the catalogue.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.action.as_str())
    }

    /// The check for a request, from the first rule that matches `method` and `uri` (a path,
    /// possibly with a query, which is ignored).
    pub fn check_for(&self, method: &str, uri: &str) -> Option<Check> {
        let path = uri.split(['?', '#']).next().unwrap_or("");
        let segments = split_path(path)?;
        self.rules
            .iter()
            .find_map(|rule| rule.check_for(method, &segments))
    }
}

impl Rule {
    fn parse(raw: RawRule) -> Result<Self, String> {
        let methods = match raw.method {
            RawMethods::One(m) if m.trim() == "*" => Methods::Any,
            RawMethods::One(m) => Methods::These(vec![valid_method(&m)?]),
            RawMethods::Many(list) if list.is_empty() => return Err("no method".to_owned()),
            RawMethods::Many(list) => Methods::These(
                list.iter()
                    .map(|m| valid_method(m))
                    .collect::<Result<_, _>>()?,
            ),
        };
        if !raw.path.starts_with('/') {
            return Err(format!("path {:?} must start with /", raw.path));
        }
        let path: Vec<Segment> = trim_trailing_slash(&raw.path)[1..]
            .split('/')
            .map(|s| match variable(s) {
                Some(Ok(name)) => Ok(Segment::Variable(name.to_owned())),
                Some(Err(())) => Err(format!("path segment {s:?} is not a {{name}}")),
                None if s.contains(['{', '}']) => {
                    Err(format!("path segment {s:?} mixes text and a {{name}}"))
                }
                None => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        let mut names = HashSet::new();
        for segment in &path {
            if let Segment::Variable(name) = segment {
                if !names.insert(name.clone()) {
                    return Err(format!("{{{name}}} appears twice in the path"));
                }
            }
        }
        let action = raw.action.trim().to_owned();
        if action.is_empty() || action.contains(char::is_whitespace) {
            return Err(format!("action {:?} is not an action name", raw.action));
        }
        let resource = parse_template(&raw.resource)?;
        if resource.is_empty() {
            return Err("resource is empty".to_owned());
        }
        for piece in &resource {
            if let Piece::Variable(name) = piece {
                if !names.contains(name) {
                    return Err(format!(
                        "the resource uses {{{name}}}, which the path does not define"
                    ));
                }
            }
        }
        Ok(Rule {
            methods,
            path,
            action,
            resource,
        })
    }

    fn check_for(&self, method: &str, segments: &[String]) -> Option<Check> {
        let method_matches = match &self.methods {
            Methods::Any => true,
            Methods::These(list) => list.iter().any(|m| m.eq_ignore_ascii_case(method)),
        };
        if !method_matches || segments.len() != self.path.len() {
            return None;
        }
        let mut values: Vec<(&str, &str)> = Vec::new();
        for (template, segment) in self.path.iter().zip(segments) {
            match template {
                Segment::Literal(text) if text == segment => {}
                Segment::Literal(_) => return None,
                Segment::Variable(name) => {
                    if !safe_value(segment) {
                        return None;
                    }
                    values.push((name, segment));
                }
            }
        }
        let mut resource = String::new();
        for piece in &self.resource {
            match piece {
                Piece::Text(text) => resource.push_str(text),
                Piece::Variable(name) => {
                    let value = values.iter().find(|(n, _)| n == name)?.1;
                    resource.push_str(value);
                }
            }
        }
        Some(Check {
            action: self.action.clone(),
            resource,
        })
    }
}

fn valid_method(method: &str) -> Result<String, String> {
    let method = method.trim();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!("method {method:?} is not an HTTP method or \"*\""));
    }
    Ok(method.to_ascii_uppercase())
}

/// `Some(Ok(name))` for `{name}`, `Some(Err(()))` for a malformed one, `None` for text.
fn variable(segment: &str) -> Option<Result<&str, ()>> {
    let inner = segment.strip_prefix('{')?.strip_suffix('}');
    Some(match inner {
        Some(name)
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(name)
        }
        _ => Err(()),
    })
}

fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if rest[..open].contains('}') {
            return Err(format!("resource {template:?} has an unmatched }}"));
        }
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("resource {template:?} has an unclosed {{"))?;
        match variable(&rest[open..=close]) {
            Some(Ok(name)) => pieces.push(Piece::Variable(name.to_owned())),
            _ => {
                return Err(format!(
                    "resource {template:?}: {:?} is not a {{name}}",
                    &rest[open..=close]
                ))
            }
        }
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("resource {template:?} has an unmatched }}"));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

fn trim_trailing_slash(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

/// The path's segments, percent-decoded; `None` when it is not a path or not UTF-8.
fn split_path(path: &str) -> Option<Vec<String>> {
    let path = trim_trailing_slash(path).strip_prefix('/')?;
    path.split('/').map(percent_decode).collect()
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A value that cannot change which resource the name means: not empty, no resource-name
/// syntax, no control characters.
fn safe_value(value: &str) -> bool {
    !value.is_empty()
        && !value
            .chars()
            .any(|c| matches!(c, ':' | ';' | ',' | '*' | '/') || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &str = r#"
        [[rule]]
        method = "PUT"
        path = "/api/projects/{p}/envs/{e}/flags/{f}"
        action = "UpdateFlagName"
        resource = "project/{p}:env/{e}:flag/{f}"

        [[rule]]
        method = ["GET", "HEAD"]
        path = "/api/projects/{p}/envs/{e}/flags/{f}/"
        action = "CanAccessEnv"
        resource = "project/{p}:env/{e}"

        [[rule]]
        method = "*"
        path = "/api/projects/{p}"
        action = "CanAccessProject"
        resource = "project/{p}"
    "#;

    fn check(action: &str, resource: &str) -> Option<Check> {
        Some(Check {
            action: action.to_owned(),
            resource: resource.to_owned(),
        })
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = RouteRules::parse(FLAGS).expect("rules");
        assert_eq!(
            rules.check_for("PUT", "/api/projects/web/envs/prod/flags/dark-mode"),
            check("UpdateFlagName", "project/web:env/prod:flag/dark-mode")
        );
        assert_eq!(
            rules.check_for("get", "/api/projects/web/envs/prod/flags/dark-mode?x=1"),
            check("CanAccessEnv", "project/web:env/prod")
        );
        assert_eq!(
            rules.check_for("DELETE", "/api/projects/web/"),
            check("CanAccessProject", "project/web")
        );
    }

    #[test]
    fn nothing_matches_other_methods_paths_or_lengths() {
        let rules = RouteRules::parse(FLAGS).expect("rules");
        for (method, uri) in [
            ("POST", "/api/projects/web/envs/prod/flags/x"),
            ("PUT", "/api/projects/web/envs/prod/flags"),
            ("PUT", "/api/projects/web/envs/prod/flags/x/history"),
            ("PUT", "/other/projects/web/envs/prod/flags/x"),
            ("GET", "api/projects/web"),
            ("GET", ""),
        ] {
            assert_eq!(rules.check_for(method, uri), None, "{method} {uri}");
        }
    }

    #[test]
    fn values_cannot_smuggle_resource_name_syntax() {
        let rules = RouteRules::parse(FLAGS).expect("rules");
        for uri in [
            "/api/projects/web:env/prod",
            "/api/projects/web%3Aenv%2Fprod",
            "/api/projects/*",
            "/api/projects/%2A",
            "/api/projects/web;beta",
            "/api/projects/a,b",
            "/api/projects/%0A",
            "/api/projects/%ZZ",
            "/api/projects/%FF",
            "/api/projects//",
        ] {
            assert_eq!(rules.check_for("GET", uri), None, "{uri}");
        }
        // Decoded text that is harmless is used decoded.
        assert_eq!(
            rules.check_for("GET", "/api/projects/caf%C3%A9"),
            check("CanAccessProject", "project/café")
        );
    }

    #[test]
    fn malformed_files_are_refused_naming_the_rule() {
        let cases = [
            ("[[rule]]\nmethod = \"GET\"\npath = \"x\"\naction = \"A\"\nresource = \"r\"", "must start with /"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a/{b\"\naction = \"A\"\nresource = \"r\"", "not a {name}"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a/x{b}\"\naction = \"A\"\nresource = \"r\"", "mixes text"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a/{b}/{b}\"\naction = \"A\"\nresource = \"r\"", "twice"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a\"\naction = \"A\"\nresource = \"r/{x}\"", "does not define"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a\"\naction = \"\"\nresource = \"r\"", "not an action"),
            ("[[rule]]\nmethod = \"G T\"\npath = \"/a\"\naction = \"A\"\nresource = \"r\"", "not an HTTP method"),
            ("[[rule]]\nmethod = []\npath = \"/a\"\naction = \"A\"\nresource = \"r\"", "no method"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a\"\naction = \"A\"\nresource = \"r/{x\"", "unclosed"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a\"\naction = \"A\"\nresource = \"\"", "empty"),
            ("[[rule]]\nmethod = \"GET\"\npath = \"/a\"\naction = \"A\"\nresource = \"r\"\nextra = 1", "unknown field"),
            ("not toml", "route rules"),
        ];
        for (text, expected) in cases {
            let error = RouteRules::parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let error = RouteRules::parse(
            "[[rule]]\nmethod = \"GET\"\npath = \"/ok\"\naction = \"A\"\nresource = \"r\"\n\
             [[rule]]\nmethod = \"GET\"\npath = \"bad\"\naction = \"A\"\nresource = \"r\"",
        )
        .expect_err("second rule");
        assert!(error.to_string().starts_with("route rule 2:"), "{error}");
    }

    #[test]
    fn actions_are_listed_for_the_catalogue_check() {
        let rules = RouteRules::parse(FLAGS).expect("rules");
        let actions: Vec<&str> = rules.actions().collect();
        assert_eq!(
            actions,
            ["UpdateFlagName", "CanAccessEnv", "CanAccessProject"]
        );
        assert!(RouteRules::parse("").expect("empty").is_empty());
    }
}
