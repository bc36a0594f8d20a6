//! `kafka-consumer-perf-test`: not built yet.

/// Runs `kafka-consumer-perf-test` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-consumer-perf-test: not implemented yet");
    1
}
