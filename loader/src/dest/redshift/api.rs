//! The Redshift Data API, as the destination uses it: submit, wait, read.
//!
//! Every call names the cluster or workgroup and how to log in. An SDK
//! error is an outage of the destination whatever its code (throttling, a
//! paused cluster, a missing secret, access denied): none of them is a
//! file's fault, and the file stays in `incoming/`.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::types::{Field, SqlParameter, StatusString};
use aws_sdk_redshiftdata::Client;
use tokio::sync::OnceCell;

use crate::aws::{classify, OperationError};
use crate::config::RedshiftConfig;
use crate::error::{Error, Result};

/// Where statements run and who runs them.
#[derive(Debug)]
pub struct DataApi {
    destination: String,
    config: RedshiftConfig,
    client: OnceCell<Client>,
}

/// How a statement ended, or that it has not yet.
#[derive(Debug)]
pub enum Ended {
    Finished {
        /// Each sub-statement's Redshift query id, in order.
        query_ids: Vec<i64>,
    },
    Failed {
        error: String,
        /// The index of the sub-statement that failed, if the API says.
        failed_at: Option<usize>,
        query_ids: Vec<i64>,
    },
    Aborted,
    /// Still submitted, picked or started when the wait ran out.
    Running,
}

/// One row of a result: each field as text (`None` for NULL).
pub type Row = Vec<Option<String>>;

impl DataApi {
    pub fn new(
        destination: &str,
        config: &RedshiftConfig,
        shared: Option<&aws_config::SdkConfig>,
    ) -> Self {
        Self {
            destination: destination.to_owned(),
            config: config.clone(),
            client: OnceCell::new_with(shared.map(Client::new)),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                Client::new(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
            })
            .await
    }

    fn outage<E: OperationError>(
        &self,
        what: &str,
        e: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> Error {
        let f = classify(e);
        Error::outage(
            &self.destination,
            format!("redshift data api {what}: {}", f.describe()),
            f.code,
            Some(f.source),
        )
    }

    fn id(&self, id: Option<String>) -> Result<String> {
        id.ok_or_else(|| {
            Error::outage(
                &self.destination,
                "the Data API returned no statement id",
                None,
                None,
            )
        })
    }

    /// Submits `sqls` as one transaction. The same `token` within the Data
    /// API's idempotency window returns the first submission's id and runs
    /// nothing again: a retried call (the SDK's, or the next tick's) cannot
    /// load twice.
    pub async fn submit(&self, sqls: Vec<String>, token: &str, name: &str) -> Result<String> {
        let c = &self.config;
        let out = self
            .client()
            .await
            .batch_execute_statement()
            .set_sqls(Some(sqls))
            .set_cluster_identifier(c.cluster_id.clone())
            .set_workgroup_name(c.workgroup.clone())
            .set_secret_arn(c.secret_arn.clone())
            .set_db_user(c.db_user.clone())
            .database(&c.database)
            .statement_name(name)
            .client_token(token)
            .send()
            .await
            .map_err(|e| self.outage("BatchExecuteStatement", e))?;
        self.id(out.id)
    }

    /// Runs one statement with named parameters (`:name`).
    async fn execute(&self, sql: &str, params: &[(String, String)]) -> Result<String> {
        let c = &self.config;
        let params = params
            .iter()
            .map(|(n, v)| SqlParameter::builder().name(n).value(v).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::outage(&self.destination, "a query parameter", None, Some(e.into()))
            })?;
        let out = self
            .client()
            .await
            .execute_statement()
            .sql(sql)
            .set_parameters((!params.is_empty()).then_some(params))
            .set_cluster_identifier(c.cluster_id.clone())
            .set_workgroup_name(c.workgroup.clone())
            .set_secret_arn(c.secret_arn.clone())
            .set_db_user(c.db_user.clone())
            .database(&c.database)
            .send()
            .await
            .map_err(|e| self.outage("ExecuteStatement", e))?;
        self.id(out.id)
    }

    /// Polls `DescribeStatement`, from 100 ms doubling to 2 s between
    /// calls, until the statement ends or `until` passes.
    pub async fn wait(&self, id: &str, until: Instant) -> Result<Ended> {
        let mut delay = Duration::from_millis(100);
        loop {
            let d = self
                .client()
                .await
                .describe_statement()
                .id(id)
                .send()
                .await
                .map_err(|e| self.outage("DescribeStatement", e))?;
            let subs = d.sub_statements();
            let query_ids = if subs.is_empty() {
                vec![d.redshift_query_id()]
            } else {
                subs.iter().map(|s| s.redshift_query_id()).collect()
            };
            match d.status() {
                Some(StatusString::Finished) => return Ok(Ended::Finished { query_ids }),
                Some(StatusString::Failed) => {
                    let failed_at = subs.iter().position(|s| {
                        s.status()
                            .is_some_and(|st| st.as_str().eq_ignore_ascii_case("failed"))
                    });
                    return Ok(Ended::Failed {
                        error: d.error().unwrap_or("no error given").to_owned(),
                        failed_at,
                        query_ids,
                    });
                }
                Some(StatusString::Aborted) => return Ok(Ended::Aborted),
                _ => {}
            }
            let now = Instant::now();
            if now >= until {
                return Ok(Ended::Running);
            }
            tokio::time::sleep(delay.min(until - now)).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Runs a query and reads all its rows (paginated), waiting at most
    /// until `until`; a query still running then is an outage.
    pub async fn query(
        &self,
        sql: &str,
        params: &[(String, String)],
        until: Instant,
    ) -> Result<Vec<Row>> {
        let id = self.execute(sql, params).await?;
        self.finished(&id, until).await?;
        self.rows(&id).await
    }

    /// Runs a statement that returns nothing, waiting until `until`.
    pub async fn run(&self, sql: &str, until: Instant) -> Result<()> {
        let id = self.execute(sql, &[]).await?;
        self.finished(&id, until).await
    }

    async fn finished(&self, id: &str, until: Instant) -> Result<()> {
        let failed = |message: String| Err(Error::outage(&self.destination, message, None, None));
        match self.wait(id, until).await? {
            Ended::Finished { .. } => Ok(()),
            Ended::Failed { error, .. } => failed(format!("statement {id} failed: {error}")),
            Ended::Aborted | Ended::Running => {
                failed(format!("statement {id} did not finish in time"))
            }
        }
    }

    async fn rows(&self, id: &str) -> Result<Vec<Row>> {
        let mut pages = self
            .client()
            .await
            .get_statement_result()
            .id(id)
            .into_paginator()
            .send();
        let mut rows = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.outage("GetStatementResult", e))?;
            rows.extend(
                page.records()
                    .iter()
                    .map(|r| r.iter().map(text).collect::<Row>()),
            );
        }
        Ok(rows)
    }
}

fn text(f: &Field) -> Option<String> {
    match f {
        Field::IsNull(true) => None,
        Field::StringValue(s) => Some(s.clone()),
        Field::LongValue(n) => Some(n.to_string()),
        Field::DoubleValue(n) => Some(n.to_string()),
        Field::BooleanValue(b) => Some(b.to_string()),
        _ => None,
    }
}
