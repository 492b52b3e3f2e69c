//! What the handlers' annotations leave out of `/openapi.json`, added once at start (SPEC §4):
//! the envelope around every JSON answer, each operation's error statuses with their codes,
//! unique camelCase operationIds, a description on every operation, enums and bounds on query
//! parameters. Works on the document as JSON, after utoipa has built it.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

/// Operations whose success body is not the envelope (RFC 7662, GitHub's format, Prometheus).
const RAW_SUCCESS: &[&str] = &[
    "/api/v1/auth/introspect",
    "/api/v1/secret-scanning/github",
    "/metrics",
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// The error statuses and what their `errors` hold (SPEC §4).
fn error_description(status: &str) -> &'static str {
    match status {
        "400" => "`InvalidJson`, `<field>_is_required`, `<field>_is_invalid`, or another code naming the problem",
        "401" => "`Unauthorized` (with `WWW-Authenticate: Bearer`), or `EmailPasswordMismatch` at login",
        "403" => "`Forbidden`, or `PermissionExceedsCreator` with the offending action and resource",
        "404" => "`ResourceNotFound`",
        "408" => "`RequestTimeout`",
        "409" => "`NameHasBeenUsed`, or `Conflict` when a concurrent request won",
        "413" => "`PayloadTooLarge`",
        "415" => "`UnsupportedMediaType`",
        "429" => "`TooManyRequests` (with `Retry-After`)",
        "431" => "`RequestHeaderFieldsTooLarge`",
        "500" => "`InternalServerError`",
        "503" => "`ServiceUnavailable` (with `Retry-After`)",
        _ => "an error code",
    }
}

fn error_envelope_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error: `success` false, the codes in `errors`, `data` null.",
        "required": ["success", "errors", "data"],
        "properties": {
            "success": { "type": "boolean", "const": false },
            "errors": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            "data": { "type": "null" }
        }
    })
}

fn success_envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "errors", "data"],
        "properties": {
            "success": { "type": "boolean", "const": true },
            "errors": { "type": "array", "items": { "type": "string" }, "maxItems": 0 },
            "data": data
        }
    })
}

/// The document, completed.
pub fn complete(mut doc: Value) -> Value {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("ErrorEnvelope".to_owned(), error_envelope_schema());
    }
    let secured_by_default = doc
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in paths.values() {
        for method in METHODS {
            if let Some(id) = item
                .pointer(&format!("/{method}/operationId"))
                .and_then(Value::as_str)
            {
                *seen.entry(camel(id)).or_default() += 1;
            }
        }
    }
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(*method).and_then(Value::as_object_mut) else {
                continue;
            };
            name_and_describe(op, path, method, &seen);
            bound_parameters(op);
            let secured = match op.get("security").and_then(Value::as_array) {
                Some(list) => list
                    .iter()
                    .any(|s| s.as_object().is_some_and(|o| !o.is_empty())),
                None => secured_by_default,
            };
            let statuses = error_statuses(op, path, method, secured);
            complete_responses(op, path, &statuses);
        }
    }
    doc
}

/// camelCase and unique (a duplicate gets its resource appended), and a description.
fn name_and_describe(
    op: &mut Map<String, Value>,
    path: &str,
    method: &str,
    seen: &HashMap<String, usize>,
) {
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .map(camel)
        .unwrap_or_else(|| camel(&format!("{method}_{path}")));
    let id = if seen.get(&id).copied().unwrap_or(0) > 1 {
        format!("{id}{}", pascal(resource(path)))
    } else {
        id
    };
    op.insert("operationId".to_owned(), Value::String(id));
    if op
        .get("description")
        .and_then(Value::as_str)
        .map_or(true, str::is_empty)
    {
        let summary = op
            .get("summary")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{} {path}", method.to_uppercase()));
        op.insert("description".to_owned(), Value::String(summary));
    }
}

/// The first path segment after `/api/v1` (`access-tokens`), or the first one.
fn resource(path: &str) -> &str {
    let rest = path
        .strip_prefix("/api/v1/")
        .unwrap_or(path.trim_start_matches('/'));
    rest.split('/').next().unwrap_or(rest)
}

fn camel(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    let mut upper = false;
    for c in id.chars() {
        if matches!(c, '_' | '-' | '/' | '{' | '}' | ' ') {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn pascal(text: &str) -> String {
    let camel = camel(text);
    let mut chars = camel.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Page parameters' bounds, and enums where the annotations say only "string".
fn bound_parameters(op: &mut Map<String, Value>) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for param in params {
        let name = param
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let schema = match name.as_str() {
            "pageSize" => Some(
                json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": 100, "default": 10 }),
            ),
            "pageIndex" => {
                Some(json!({ "type": "integer", "format": "int64", "minimum": 0, "default": 0 }))
            }
            "status" if param.pointer("/schema/type") == Some(&json!("string")) => {
                Some(json!({ "$ref": "#/components/schemas/TokenStatus" }))
            }
            _ => None,
        };
        if let (Some(schema), Some(p)) = (schema, param.as_object_mut()) {
            p.insert("schema".to_owned(), schema);
        }
    }
}

/// Which errors an operation can answer, from its shape.
fn error_statuses(
    op: &Map<String, Value>,
    path: &str,
    method: &str,
    secured: bool,
) -> BTreeSet<&'static str> {
    let mut statuses: BTreeSet<&'static str> = ["408", "431", "500", "503"].into();
    let has_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    if secured {
        // 400: a malformed `Organization` header.
        statuses.extend(["400", "401", "403", "429"]);
    }
    if op.contains_key("requestBody") {
        statuses.extend(["400", "413", "415"]);
    }
    if has_params {
        statuses.insert("400");
    }
    if path.contains('{') {
        statuses.insert("404");
    }
    let management = path.starts_with("/api/v1/") && !path.starts_with("/api/v1/auth/");
    if management && method != "get" {
        // Writes: a name already used, a race lost to another request, a row gone meanwhile.
        statuses.extend(["404", "409"]);
    }
    for declared in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|r| r.keys())
    {
        if let Some(s) = [
            "400", "401", "403", "404", "409", "413", "415", "429", "503",
        ]
        .into_iter()
        .find(|s| s == declared)
        {
            statuses.insert(s);
        }
    }
    statuses
}

/// The envelope on every JSON answer, and every error status with its codes.
fn complete_responses(op: &mut Map<String, Value>, path: &str, errors: &BTreeSet<&'static str>) {
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut out = Map::new();
    let mut declared: HashMap<String, String> = HashMap::new();
    let raw = RAW_SUCCESS.contains(&path);
    for (status, mut response) in responses {
        let is_success = status.starts_with('2');
        if is_success && !raw {
            let data = response
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.values().find_map(|m| m.get("schema").cloned()))
                .unwrap_or_else(|| json!({}));
            let r = response
                .as_object_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            response = Value::Object(r);
            response["content"] =
                json!({ "application/json": { "schema": success_envelope(data) } });
        }
        if !is_success {
            if let Some(text) = response.get("description").and_then(Value::as_str) {
                declared.insert(status, text.to_owned());
            }
            continue;
        }
        if response
            .get("description")
            .and_then(Value::as_str)
            .map_or(true, str::is_empty)
        {
            response["description"] = json!("success");
        }
        out.insert(status, response);
    }
    for status in errors {
        let description = match declared.get(*status).filter(|d| !d.is_empty()) {
            Some(own) => format!("{own}. Codes: {}", error_description(status)),
            None => error_description(status).to_owned(),
        };
        let mut response = json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorEnvelope" } } }
        });
        if matches!(*status, "429" | "503") {
            response["headers"] = json!({ "Retry-After": { "description": "seconds to wait", "schema": { "type": "integer" } } });
        }
        if *status == "401" {
            response["headers"] = json!({ "WWW-Authenticate": { "schema": { "type": "string" } } });
        }
        out.insert((*status).to_owned(), response);
    }
    op.insert("responses".to_owned(), Value::Object(out));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_camel_case() {
        assert_eq!(camel("attach_policy"), "attachPolicy");
        assert_eq!(pascal("access-tokens"), "AccessTokens");
        assert_eq!(resource("/api/v1/groups/{id}"), "groups");
    }
}
