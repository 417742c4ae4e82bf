//! `additionalPrinterColumns`: the cells `kubectl get` shows for a custom kind. Columns
//! name their value with a JSONPath; the subset Kubernetes' documentation uses is read here:
//! fields (`.spec.size`, `.metadata['name']`), indices (`[0]`, `[*]`) and equality filters
//! (`.status.conditions[?(@.type=="Ready")].status`). The first value found fills the cell.

use serde_json::{json, Value};

use crate::api::table::{age, human_duration, name};

/// One printer column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// `None` for a path outside the subset read here: its cells stay empty.
    pub path: Option<Vec<Step>>,
}

/// One step of a parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.<field path> == <value>)]` (or `!=`).
    Filter {
        field: Vec<String>,
        equals: bool,
        value: Value,
    },
}

impl Column {
    /// A column of a CRD version's `additionalPrinterColumns`.
    pub fn from_definition(def: &Value) -> Option<Self> {
        let s = |k: &str| def.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Some(Self {
            name: s("name"),
            type_: s("type"),
            format: s("format"),
            description: s("description"),
            priority: def.get("priority").and_then(Value::as_i64).unwrap_or(0),
            path: parse(&s("jsonPath")).ok(),
        })
    }
}

/// Parse a JSONPath of the supported subset (with or without `{}` around it).
pub fn parse(path: &str) -> Result<Vec<Step>, String> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    if !p.starts_with(['.', '[']) {
        return Err(format!("{path:?}: a path starts with '.'"));
    }
    let mut steps = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            // A field name ends at an unescaped `.` or `[` (`crossplane\.io/name`).
            let mut name = String::new();
            let mut chars = r.char_indices().peekable();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => name.extend(chars.next().map(|(_, c)| c)),
                    '.' | '[' => {
                        end = i;
                        break;
                    }
                    c => name.push(c),
                }
            }
            if name.is_empty() {
                return Err(format!("{path:?}: empty field name"));
            }
            steps.push(Step::Field(name));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = bracket_end(r).ok_or_else(|| format!("{path:?}: unclosed '['"))?;
            steps.push(bracket(&r[..end]).map_err(|e| format!("{path:?}: {e}"))?);
            rest = &r[end + 1..];
        } else {
            return Err(format!("{path:?}: unexpected {rest:?}"));
        }
    }
    Ok(steps)
}

/// The index of the `]` closing a bracket, skipping quoted text.
fn bracket_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
}

fn bracket(inner: &str) -> Result<Step, String> {
    let inner = inner.trim();
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Ok(i) = inner.parse::<usize>() {
        return Ok(Step::Index(i));
    }
    if let Some(field) = unquote(inner) {
        return Ok(Step::Field(field.to_string()));
    }
    let cond = inner
        .strip_prefix("?(")
        .and_then(|c| c.strip_suffix(')'))
        .ok_or_else(|| format!("unsupported [{inner}]"))?;
    let (lhs, rhs, equals) = match (cond.split_once("=="), cond.split_once("!=")) {
        (Some((l, r)), _) => (l, r, true),
        (None, Some((l, r))) => (l, r, false),
        _ => return Err(format!("unsupported filter {cond:?}")),
    };
    let field = lhs
        .trim()
        .strip_prefix("@.")
        .ok_or_else(|| format!("a filter compares @.<field>: {cond:?}"))?
        .split('.')
        .map(str::to_string)
        .collect();
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => json!(s),
        None => serde_json::from_str(rhs).map_err(|_| format!("bad value {rhs:?}"))?,
    };
    Ok(Step::Filter {
        field,
        equals,
        value,
    })
}

/// Every value `path` reaches in `obj`, in document order.
pub fn find<'a>(obj: &'a Value, path: &[Step]) -> Vec<&'a Value> {
    let mut cur = vec![obj];
    for step in path {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f)),
                Step::Index(i) => next.extend(v.get(*i)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter {
                    field,
                    equals,
                    value,
                } => {
                    let items: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    next.extend(items.into_iter().filter(|item| {
                        let got = field.iter().try_fold(*item, |o, f| o.get(f));
                        (got == Some(value)) == *equals
                    }));
                }
            }
        }
        cur = next;
    }
    cur
}

/// The cell of a value for a column of type `ty` (as Kubernetes' CRD table printer).
fn cell(ty: &str, v: &Value) -> Value {
    match (ty, v) {
        ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
        ("integer", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f as i64)),
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => v.clone(),
        ("date", Value::String(s)) => {
            chrono::DateTime::parse_from_rfc3339(s).map_or(Value::Null, |t| {
                let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
                json!(human_duration(secs))
            })
        }
        ("string", Value::String(s)) => json!(s),
        ("string", other) => json!(other.to_string()),
        _ => Value::Null,
    }
}

/// The `columnDefinitions` of a custom kind's table.
pub fn definitions(columns: &[Column]) -> Vec<Value> {
    let mut out = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    if columns.is_empty() {
        out.push(
            json!({"name": "Age", "type": "date", "format": "", "description":
            "CreationTimestamp is a timestamp representing the server time when this object \
             was created.", "priority": 0}),
        );
    }
    out.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format,
               "description": c.description, "priority": c.priority})
    }));
    out
}

/// The cells of `obj` under [`definitions`].
pub fn cells(columns: &[Column], obj: &Value) -> Vec<Value> {
    let mut out = vec![json!(name(obj))];
    if columns.is_empty() {
        out.push(json!(age(obj)));
    }
    out.extend(columns.iter().map(|c| {
        c.path
            .as_ref()
            .and_then(|p| find(obj, p).first().map(|v| cell(&c.type_, v)))
            .unwrap_or(Value::Null)
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> Value {
        json!({
            "metadata": {"name": "w", "labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"size": 3, "ratio": 0.5, "tags": ["a", "b"]},
            "status": {"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]},
        })
    }

    fn first(path: &str) -> Option<Value> {
        find(&obj(), &parse(path).unwrap())
            .first()
            .map(|v| (*v).clone())
    }

    #[test]
    fn paths() {
        assert_eq!(first(".spec.size"), Some(json!(3)));
        assert_eq!(first("{.spec.tags[1]}"), Some(json!("b")));
        assert_eq!(first(".spec.tags[*]"), Some(json!("a")));
        assert_eq!(
            first(r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type != 'Synced')].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            first(".metadata.labels['app.kubernetes.io/name']"),
            Some(json!("x"))
        );
        assert_eq!(first(".spec.missing"), None);
        assert_eq!(
            first(r".metadata.labels.app\.kubernetes\.io/name"),
            Some(json!("x"))
        );
        assert!(parse("spec.size").is_err());
        assert!(parse(".spec[").is_err());
        assert!(parse(".spec[?(@.a > 1)]").is_err());
    }

    #[test]
    fn cells_follow_types() {
        let defs = json!([
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
            {"name": "Ready", "type": "string",
             "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
            {"name": "Gone", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Sliced", "type": "string", "jsonPath": ".spec.tags[-1:]"},
        ]);
        let cols: Vec<Column> = defs
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Column::from_definition)
            .collect();
        assert_eq!(definitions(&cols).len(), 7);
        assert_eq!(
            cells(&cols, &obj()),
            vec![
                json!("w"),
                json!(3),
                json!(0.5),
                json!("True"),
                json!(r#"["a","b"]"#),
                Value::Null,
                Value::Null
            ]
        );
        let plain = cells(&[], &obj());
        assert_eq!(plain.len(), 2);
    }
}
