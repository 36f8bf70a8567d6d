//! The reference of the cold-start benchmark (`bench/coldstart.sh`): a
//! minimal `lambda_runtime` function, built the same way as ours (release,
//! this workspace's dependency versions), that answers every event with
//! "hello". Its time from process start to the first request to the
//! runtime API is the floor our functions' cold start is measured against.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>("hello")
    }))
    .await
}
