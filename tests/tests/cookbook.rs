//! The SQL cookbook in `docs/` is part of the interface: every query in it
//! runs against the schema the services migrate to.

use taskyard_tests::Cluster;

#[tokio::test]
async fn every_query_in_the_sql_cookbook_runs_against_the_real_schema() -> anyhow::Result<()> {
    let cluster = Cluster::start(&[]).await?;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/sql-cookbook.md");
    let text = std::fs::read_to_string(path)?;
    let blocks: Vec<&str> = text
        .split("```sql")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert!(blocks.len() >= 10, "found only {} sql blocks", blocks.len());
    // The cookbook's placeholders: X a task, W a workflow, N a node.
    let any_id = "00000000-0000-0000-0000-000000000000";
    let mut ran = 0;
    for block in blocks {
        for statement in block.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let sql = statement
                .replace("'X'", &format!("'{any_id}'"))
                .replace("'W'", &format!("'{any_id}'"));
            cluster
                .db
                .simple_query(&sql)
                .await
                .map_err(|err| anyhow::anyhow!("{err:?} in:\n{sql}"))?;
            ran += 1;
        }
    }
    assert!(ran >= 10);
    Ok(())
}
