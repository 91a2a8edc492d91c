//! The official Rust SDK (`temporalio-sdk`) runs a workflow that calls an activity and
//! sleeps on a timer, against a temper started by the test.

mod support;

use std::time::Duration;

use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions,
    WorkflowStartOptions,
};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult,
};

#[workflow]
#[derive(Default)]
pub struct Greeting;

#[workflow_methods]
impl Greeting {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, name: String) -> WorkflowResult<String> {
        let greeting = ctx
            .execute_activity(
                Greeter::greet,
                name,
                ActivityOptions::start_to_close_timeout(Duration::from_secs(10)),
            )
            .await?;
        ctx.timer(Duration::from_millis(200)).await;
        Ok(greeting)
    }
}

pub struct Greeter;

#[activities]
impl Greeter {
    #[activity]
    pub async fn greet(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
        Ok(format!("Hello, {name}!"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_with_an_activity_and_a_timer() -> Result<(), Box<dyn std::error::Error>> {
    let server = support::DevServer::start();
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let connection =
        Connection::connect(ConnectionOptions::new(Url::parse(&server.url())?).build()).await?;
    let client = Client::new(connection, ClientOptions::new("default").build())?;

    let options = WorkerOptions::new("rust-sdk-test")
        .register_workflow::<Greeting>()?
        .register_activities(Greeter)
        .build();
    let mut worker = Worker::new(&runtime, client.clone(), options)?;
    let stop = worker.shutdown_handle();
    // The worker's future is not Send: drive it and the client side together in this task.
    let client_side = async {
        let handle = client
            .start_workflow(
                Greeting::run,
                "Rust".to_string(),
                WorkflowStartOptions::new("rust-sdk-test", "rust-sdk-wf").build(),
            )
            .await?;
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await??;
        stop();
        Ok::<_, Box<dyn std::error::Error>>(result)
    };
    let (ran, result) = tokio::time::timeout(Duration::from_secs(90), async {
        tokio::join!(worker.run(), client_side)
    })
    .await?;
    assert_eq!(result?, "Hello, Rust!");
    ran?;
    Ok(())
}
