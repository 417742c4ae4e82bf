//! The HTML page: rows in a table, every cell escaped.

use super::mysql::Rows;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for `rows` read from `source`, served by `served_by` (the pod's hostname).
pub fn render(rows: &Rows, source: &str, served_by: &str) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Skiff demo</title></head>\n<body>\n",
    );
    html.push_str(&format!(
        "<h1>Skiff demo</h1>\n<p>Rows read from MySQL at {} by {}</p>\n<table border=\"1\">\n<tr>",
        escape(source),
        escape(served_by)
    ));
    for c in &rows.columns {
        html.push_str(&format!("<th>{}</th>", escape(c)));
    }
    html.push_str("</tr>\n");
    for r in &rows.rows {
        html.push_str("<tr>");
        for cell in r {
            html.push_str(&format!(
                "<td>{}</td>",
                escape(cell.as_deref().unwrap_or("NULL"))
            ));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_an_escaped_table() {
        let rows = Rows {
            columns: vec!["id".into(), "name".into()],
            rows: vec![
                vec![Some("1".into()), Some("<Ada>".into())],
                vec![Some("2".into()), None],
            ],
        };
        let html = render(&rows, "10.96.0.12:3306", "myweb-x");
        assert!(html.contains("<th>id</th><th>name</th>"));
        assert!(html.contains("<td>1</td><td>&lt;Ada&gt;</td>"));
        assert!(html.contains("<td>2</td><td>NULL</td>"));
        assert!(html.contains("by myweb-x"));
    }
}
