//! The CQL subset the v1 search understands.

use crate::data::SimPage;
/// The CQL subset clients use: `space = "KEY"`, `type = x` / `type in (..)`,
/// `id = n` / `id in (..)`, joined by `and`.
#[derive(Default)]
pub(super) struct Cql {
    pub(super) space: Option<String>,
    pub(super) types: Option<Vec<String>>,
    pub(super) ids: Option<Vec<u64>>,
    pub(super) order: Option<CqlOrder>,
}

/// A CQL `order by <field> [asc|desc]` the simulator can sort by.
#[derive(Clone, Copy)]
pub(super) struct CqlOrder {
    field: CqlSortField,
    descending: bool,
}

#[derive(Clone, Copy)]
enum CqlSortField {
    Created,
    LastModified,
    Title,
}

impl CqlOrder {
    fn parse(clause: &str) -> Result<CqlOrder, String> {
        let mut words = clause.split_whitespace();
        let field = words.next().ok_or("missing field after ORDER BY")?;
        let (field, default_descending) = match field.to_ascii_lowercase().as_str() {
            // Confluence sorts dates newest first unless told otherwise.
            "created" => (CqlSortField::Created, true),
            "lastmodified" => (CqlSortField::LastModified, true),
            "title" => (CqlSortField::Title, false),
            other => return Err(format!("cannot order by {other:?}")),
        };
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None => default_descending,
            Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(format!("unexpected {other:?} in ORDER BY")),
        };
        if let Some(extra) = words.next() {
            return Err(format!("unexpected {extra:?} in ORDER BY"));
        }
        Ok(CqlOrder { field, descending })
    }

    /// Sorts `pages` by the field, ties by id, so that the descending order
    /// is exactly the ascending one reversed.
    pub(super) fn sort(self, pages: &mut [&SimPage]) {
        match self.field {
            CqlSortField::Created => pages.sort_by_key(|p| (p.created_at, p.id)),
            CqlSortField::LastModified => pages.sort_by_key(|p| (p.updated_at, p.id)),
            CqlSortField::Title => pages.sort_by(|a, b| (&a.title, a.id).cmp(&(&b.title, b.id))),
        }
        if self.descending {
            pages.reverse();
        }
    }
}

/// Splits `… order by …` off a CQL query.
fn split_order_by(cql: &str) -> Result<(&str, Option<CqlOrder>), String> {
    let lower = cql.to_ascii_lowercase();
    let Some(at) = lower.find("order by") else {
        return Ok((cql, None));
    };
    let order = CqlOrder::parse(&cql[at + "order by".len()..])?;
    Ok((cql[..at].trim_end(), Some(order)))
}

pub(super) fn parse_cql(cql: &str) -> Result<Cql, String> {
    let mut out = Cql::default();
    let (cql, order) = split_order_by(cql)?;
    out.order = order;
    for clause in split_and(cql) {
        let clause = clause.trim();
        let lower = clause.to_ascii_lowercase();
        let (field, op_rest) = lower
            .split_once(|c: char| c == '=' || c.is_whitespace())
            .ok_or_else(|| format!("cannot parse CQL clause {clause:?}"))?;
        let field = field.trim();
        let value_part = clause[field.len()..].trim();
        let values: Vec<String> = if let Some(rest) = value_part.strip_prefix('=') {
            vec![unquote(rest.trim())]
        } else if op_rest.trim_start().starts_with("in") {
            let open = value_part.find('(').ok_or("missing ( in CQL")?;
            let close = value_part.rfind(')').ok_or("missing ) in CQL")?;
            value_part
                .get(open + 1..close)
                .unwrap_or_default()
                .split(',')
                .map(|v| unquote(v.trim()))
                .filter(|v| !v.is_empty())
                .collect()
        } else {
            return Err(format!("unsupported CQL operator in {clause:?}"));
        };
        match field {
            "space" => out.space = values.into_iter().next(),
            "type" => out.types = Some(values),
            "id" => {
                out.ids = Some(
                    values
                        .iter()
                        .map(|v| v.parse::<u64>().map_err(|_| format!("bad id {v:?}")))
                        .collect::<Result<_, _>>()?,
                )
            }
            f => return Err(format!("unsupported CQL field {f:?}")),
        }
    }
    Ok(out)
}

fn split_and(cql: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let lower = cql.to_ascii_lowercase();
    let mut rest_start = 0;
    let mut search_from = 0;
    while let Some(pos) = lower[search_from..].find(" and ") {
        let at = search_from + pos;
        parts.push(&cql[rest_start..at]);
        rest_start = at + 5;
        search_from = rest_start;
    }
    parts.push(&cql[rest_start..]);
    parts
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '\'')
        .replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cql_subset() {
        let c = parse_cql("space=\"ENG\" and type in (page,blogpost)").unwrap();
        assert_eq!(c.space.as_deref(), Some("ENG"));
        assert_eq!(
            c.types,
            Some(vec!["page".to_string(), "blogpost".to_string()])
        );
        let c = parse_cql("id in (1, 2,3)").unwrap();
        assert_eq!(c.ids, Some(vec![1, 2, 3]));
        let c = parse_cql("type = page AND space = OPS").unwrap();
        assert_eq!(c.space.as_deref(), Some("OPS"));
        assert!(parse_cql("title ~ \"x\"").is_err());
        let c = parse_cql("space=\"ENG\" and type in (page) order by created desc").unwrap();
        assert_eq!(c.space.as_deref(), Some("ENG"));
        assert!(c.order.is_some_and(|o| o.descending));
        let c = parse_cql("space = ENG ORDER BY created ASC").unwrap();
        assert!(c.order.is_some_and(|o| !o.descending));
        assert!(parse_cql("space = ENG order by label").is_err());
        assert!(parse_cql("space = ENG order by created sideways").is_err());
    }
}
