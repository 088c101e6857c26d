//! Rule files of a test's own.

/// A rule file in Elastic's detection-rules format with an EQL `query` of the caller's own.
pub fn eql_rule(rule_id: &str, name: &str, description: &str, query: &str) -> String {
    format!(
        r#"[metadata]
creation_date = "2026/01/01"
maturity = "development"
updated_date = "2026/01/01"

[rule]
author = ["boot-copy tests"]
description = "{description}"
language = "eql"
license = "MIT"
name = "{name}"
risk_score = 21
rule_id = "{rule_id}"
severity = "low"
type = "eql"
version = 1
query = '''
{query}
'''
"#
    )
}
