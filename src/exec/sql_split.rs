//! Splits SQL text into statements at top-level semicolons.
//!
//! An export exports the rows of its last statement; statements before it are setup (for example
//! `CREATE TABLE IF NOT EXISTS`, so an example runs on a fresh database). Semicolons inside
//! quotes (`'…'`, `"…"`), comments (`--`, `/* */`) and PostgreSQL dollar quotes (`$$…$$`,
//! `$tag$…$tag$`) do not split.

/// The non-empty statements of `sql`, trimmed, without their semicolons.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let q = bytes[i];
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        // A doubled quote is an escaped quote.
                        if bytes.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                if let Some(tag_len) = dollar_tag(&bytes[i..]) {
                    let tag = &sql[i..i + tag_len];
                    match sql[i + tag_len..].find(tag) {
                        Some(end) => i += tag_len + end + tag_len - 1,
                        None => i = bytes.len(),
                    }
                }
            }
            b';' => {
                push(&mut out, &sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(&mut out, &sql[start.min(sql.len())..]);
    out
}

fn push<'a>(out: &mut Vec<&'a str>, stmt: &'a str) {
    let t = stmt.trim();
    if !t.is_empty() && !only_comments(t) {
        out.push(t);
    }
}

fn only_comments(s: &str) -> bool {
    s.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with("--")
    })
}

/// The length of a dollar-quote opener (`$$` or `$tag$`) at the start of `b`.
fn dollar_tag(b: &[u8]) -> Option<usize> {
    let end = b[1..].iter().position(|&c| c == b'$')? + 1;
    let tag = &b[1..end];
    let ok = tag
        .iter()
        .enumerate()
        .all(|(i, &c)| c == b'_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    ok.then_some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    fn check(sql: &str, expected: &[&str]) {
        assert_eq!(split_statements(sql), expected, "{sql}");
    }

    #[test]
    fn splits_only_at_top_level_semicolons() {
        check("SELECT 1", &["SELECT 1"]);
        check("SELECT 1;", &["SELECT 1"]);
        check(
            "CREATE TABLE t (a INT); SELECT * FROM t",
            &["CREATE TABLE t (a INT)", "SELECT * FROM t"],
        );
        check(
            "SELECT 'a;b', \"c;d\"; SELECT 2",
            &["SELECT 'a;b', \"c;d\"", "SELECT 2"],
        );
        check("SELECT 'it''s; fine'", &["SELECT 'it''s; fine'"]);
        check(
            "-- setup; still a comment\nSELECT 1; -- trailing;\n",
            &["-- setup; still a comment\nSELECT 1"],
        );
        check(
            "SELECT /* a; b */ 1; SELECT 2",
            &["SELECT /* a; b */ 1", "SELECT 2"],
        );
        check(
            "DO $$ BEGIN PERFORM 1; END $$; SELECT 1",
            &["DO $$ BEGIN PERFORM 1; END $$", "SELECT 1"],
        );
        check(
            "SELECT $fn$ a; b $fn$; SELECT $1",
            &["SELECT $fn$ a; b $fn$", "SELECT $1"],
        );
        check(" ; ;\n", &[]);
    }
}
