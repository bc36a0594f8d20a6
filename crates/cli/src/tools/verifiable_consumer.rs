//! `kafka-verifiable-consumer`: not built yet.

/// Runs `kafka-verifiable-consumer` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-verifiable-consumer: not implemented yet");
    1
}
