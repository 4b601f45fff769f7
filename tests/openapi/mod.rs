//! Checks recorded HTTP exchanges against Atlassian's published OpenAPI
//! documents: each request must match an operation (method, path template,
//! query parameter names, values valid against the parameter schemas) and
//! each JSON answer must validate against that operation's response schema.
//!
//! The documents are the copies vendored in `sim/openapi/` (see its README;
//! `$CONFLUENCE_SPECS_DIR` points elsewhere, e.g. at a fresher download). Validation is
//! done by the `jsonschema` crate: the OpenAPI 3.0 schemas are only adapted
//! to JSON Schema draft 4 (their base) by turning `nullable: true` into a
//! `null` alternative (and, for parameters, moving a misplaced array `enum`
//! into `items`); `$ref`s resolve inside the document itself.
#![allow(dead_code)]

use confluence_sim::Exchange;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Where the spec files are.
pub fn specs_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CONFLUENCE_SPECS_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sim/openapi")
}

/// One OpenAPI document, with the prefix its paths are served under.
pub struct Spec {
    pub name: &'static str,
    doc: Value,
    /// Prepended to the document's paths to get request paths
    /// (v2's server URL ends in `/wiki/api/v2`; v1's paths are absolute).
    prefix: &'static str,
    /// The document's `components`, adapted to draft 4, for `$ref`s.
    components: Value,
    validators: HashMap<String, jsonschema::Validator>,
}

/// A request matched to an operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub spec: &'static str,
    pub method: String,
    /// The path template as the spec writes it, e.g. `/pages/{id}`.
    pub template: String,
    pub operation_id: String,
}

/// What a check of one exchange found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Operation -> query parameter names used -> times.
    pub used: BTreeMap<Operation, BTreeMap<String, u64>>,
    /// Everything that disagrees with the spec, one line each.
    pub violations: Vec<String>,
    /// Responses validated against a schema.
    pub responses_validated: u64,
}

impl Findings {
    /// Violations with array indices and ids folded, each with its count:
    /// one line per distinct disagreement.
    pub fn distinct(&self) -> Vec<String> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for v in &self.violations {
            *counts.entry(fold(v)).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(v, n)| format!("{n:>4} x {v}"))
            .collect()
    }
}

/// `/results/3/x` -> `/results/*/x`, `/pages/123` -> `/pages/*`, query dropped.
fn fold(line: &str) -> String {
    let (request, rest) = line.split_once(": ").unwrap_or((line, ""));
    let request = request.split('?').next().unwrap_or(request);
    let fold_numbers = |s: &str| {
        s.split('/')
            .map(|seg| {
                if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                    "*"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    format!("{}: {}", fold_numbers(request), fold_numbers(rest))
}

impl Spec {
    pub fn load(file: &str, name: &'static str, prefix: &'static str) -> Spec {
        let path = specs_dir().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}): the documents are vendored in sim/openapi/ (hack/openapi-refresh restores them), or set CONFLUENCE_SPECS_DIR",
                path.display()
            )
        });
        let doc: Value = serde_json::from_str(&text).expect("spec is JSON");
        let mut components = doc["components"].clone();
        adapt(&mut components);
        Spec {
            name,
            doc,
            prefix,
            components,
            validators: HashMap::new(),
        }
    }

    /// The cloud-v2 and cloud-v1 documents, as Cloud serves them.
    pub fn cloud() -> Vec<Spec> {
        vec![
            Spec::load("cloud-v2.openapi.json", "cloud-v2", "/wiki/api/v2"),
            Spec::load("cloud-v1.openapi.json", "cloud-v1", ""),
        ]
    }

    /// The operation a request path matches: the template with the fewest
    /// placeholders wins (`/content/search` over `/content/{id}`).
    fn find(&self, method: &str, path: &str) -> Option<(String, Value, HashMap<String, String>)> {
        let rest = path.strip_prefix(self.prefix)?;
        let paths = self.doc["paths"].as_object()?;
        let mut best: Option<(usize, String, Value, HashMap<String, String>)> = None;
        for (template, item) in paths {
            let Some(captures) = match_template(template, rest) else {
                continue;
            };
            let Some(op) = item.get(method.to_lowercase()) else {
                continue;
            };
            // Path-level parameters apply to every operation of the path.
            let mut op = op.clone();
            if let Some(shared) = item.get("parameters").and_then(Value::as_array) {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let mut all = shared.clone();
                all.extend(params);
                op["parameters"] = Value::Array(all);
            }
            let score = captures.len();
            if best.as_ref().is_none_or(|(s, ..)| score < *s) {
                best = Some((score, template.clone(), op, captures));
            }
        }
        best.map(|(_, t, op, c)| (t, op, c))
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                self.doc.pointer(pointer).unwrap_or(&Value::Null)
            }
            None => v,
        }
    }

    fn validator(&mut self, key: &str, schema: &Value) -> &jsonschema::Validator {
        if !self.validators.contains_key(key) {
            let mut schema = schema.clone();
            adapt(&mut schema);
            let root = json!({ "allOf": [schema], "components": self.components });
            let v = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| {
                    panic!("{}: schema for {key} does not compile: {e}", self.name)
                });
            self.validators.insert(key.to_string(), v);
        }
        &self.validators[key]
    }

    /// A parameter's schema as a validator must see it. Some v1 array
    /// parameters (`status` of `getContent`, `getContentById`) put `enum`
    /// beside `items` instead of inside it, which would compare the whole
    /// array with each enum value; it is moved into `items`, where the
    /// parameter's description puts it.
    fn param_schema(&self, p: &Value) -> Value {
        let mut schema = self.resolve(&p["schema"]).clone();
        if schema["type"] == "array"
            && let Some(values) = schema.as_object_mut().and_then(|m| m.remove("enum"))
        {
            schema["items"]["enum"] = values;
        }
        schema
    }

    fn errors(&mut self, key: &str, schema: &Value, instance: &Value) -> Vec<String> {
        let mut out: Vec<String> = self
            .validator(key, schema)
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Checks every exchange against the first spec whose prefix and paths
/// match it; exchanges no spec describes are violations.
pub fn check(specs: &mut [Spec], exchanges: &[Exchange]) -> Findings {
    let mut findings = Findings::default();
    for ex in exchanges {
        let line = format!(
            "{} {}{}",
            ex.method,
            ex.path,
            ex.query
                .as_deref()
                .filter(|q| !q.is_empty())
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        let Some(spec) = specs
            .iter_mut()
            .find(|s| s.find(&ex.method, &ex.path).is_some())
        else {
            findings
                .violations
                .push(format!("{line}: no operation in the spec"));
            continue;
        };
        let (template, op, captures) = spec.find(&ex.method, &ex.path).expect("matched just above");
        let operation = Operation {
            spec: spec.name,
            method: ex.method.clone(),
            template: template.clone(),
            operation_id: op["operationId"].as_str().unwrap_or_default().to_string(),
        };
        let key = format!("{} {} {}", spec.name, ex.method, template);
        let params: Vec<Value> = op["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| spec.resolve(p).clone())
            .collect();
        let param = |name: &str, place: &str| {
            params
                .iter()
                .find(|p| p["name"] == name && p["in"] == place)
                .cloned()
        };
        // Path parameters.
        for (name, value) in &captures {
            match param(name, "path") {
                Some(p) => {
                    let schema = spec.param_schema(&p);
                    let value = typed(&schema, std::slice::from_ref(value), spec);
                    for e in spec.errors(&format!("{key} path {name}"), &schema, &value) {
                        findings
                            .violations
                            .push(format!("{line}: path parameter {name}={value}: {e}"));
                    }
                }
                None => findings
                    .violations
                    .push(format!("{line}: path parameter {name} not declared")),
            }
        }
        // Query parameters: names must be declared, values valid.
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in
            url::form_urlencoded::parse(ex.query.as_deref().unwrap_or_default().as_bytes())
        {
            values
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        let used = findings.used.entry(operation).or_default();
        for (name, raw) in &values {
            *used.entry(name.clone()).or_default() += 1;
            let Some(p) = param(name, "query") else {
                findings.violations.push(format!(
                    "{line}: query parameter {name:?} is not in the spec"
                ));
                continue;
            };
            let schema = spec.param_schema(&p);
            let value = typed(&schema, raw, spec);
            for e in spec.errors(&format!("{key} query {name}"), &schema, &value) {
                findings
                    .violations
                    .push(format!("{line}: query parameter {name}={value}: {e}"));
            }
        }
        for p in &params {
            if p["in"] == "query"
                && p["required"] == true
                && !values.contains_key(p["name"].as_str().unwrap_or_default())
            {
                findings.violations.push(format!(
                    "{line}: required query parameter {} missing",
                    p["name"]
                ));
            }
        }
        // The response.
        let status = ex.status.to_string();
        let responses = &op["responses"];
        let Some(response) = responses.get(&status).or_else(|| responses.get("default")) else {
            findings.violations.push(format!(
                "{line}: status {status} is not a documented response"
            ));
            continue;
        };
        let response = spec.resolve(response).clone();
        let schema = response["content"]["application/json"]["schema"].clone();
        match (&ex.body, schema.is_null()) {
            (Some(body), false) => {
                findings.responses_validated += 1;
                for e in spec.errors(&format!("{key} {status}"), &schema, body) {
                    findings
                        .violations
                        .push(format!("{line}: response {status}: {e}"));
                }
            }
            (None, false) if ex.status < 300 => findings
                .violations
                .push(format!("{line}: response {status} is not JSON")),
            _ => {}
        }
    }
    findings
}

/// Request values typed by their schema: integers and booleans parsed,
/// arrays from repeated parameters and comma-separated lists (which the
/// v2 descriptions call for: "a comma-separated list").
fn typed(schema: &Value, raw: &[String], spec: &Spec) -> Value {
    let schema = spec.resolve(schema);
    if schema["type"] == "array" {
        let items = spec.resolve(&schema["items"]);
        let parts: Vec<Value> = raw
            .iter()
            .flat_map(|r| r.split(','))
            .map(|v| scalar(items, v))
            .collect();
        return Value::Array(parts);
    }
    scalar(schema, raw.last().map_or("", String::as_str))
}

fn scalar(schema: &Value, v: &str) -> Value {
    match schema["type"].as_str() {
        Some("integer") => v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n)),
        Some("number") => v.parse::<f64>().map_or_else(|_| json!(v), |n| json!(n)),
        Some("boolean") => v.parse::<bool>().map_or_else(|_| json!(v), |b| json!(b)),
        _ => json!(v),
    }
}

/// `/pages/{id}` against `/pages/123`: the placeholder values, or `None`.
fn match_template(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut captures = HashMap::new();
    for (ts, ps) in t.iter().zip(&p) {
        if let Some(name) = ts.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            if ps.is_empty() {
                return None;
            }
            let value = percent_decode(ps);
            captures.insert(name.to_string(), value);
        } else if ts != ps {
            return None;
        }
    }
    Some(captures)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// OpenAPI 3.0 to JSON Schema draft 4: `nullable: true` becomes a `null`
/// alternative (for typed schemas in `type`, otherwise via `anyOf`).
fn adapt(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                adapt(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                make_nullable(map);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(adapt),
        _ => {}
    }
}

fn make_nullable(map: &mut Map<String, Value>) {
    if let Some(Value::String(t)) = map.get("type").cloned() {
        map.insert("type".into(), json!([t, "null"]));
        if let Some(Value::Array(e)) = map.get_mut("enum") {
            e.push(Value::Null);
        }
    } else {
        let inner = Value::Object(std::mem::take(map));
        map.insert("anyOf".into(), json!([inner, { "type": "null" }]));
    }
}
