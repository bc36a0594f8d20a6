//! `kafka-verifiable-producer`: not built yet.

/// Runs `kafka-verifiable-producer` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-verifiable-producer: not implemented yet");
    1
}
