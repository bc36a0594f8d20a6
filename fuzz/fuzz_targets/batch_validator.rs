//! Any bytes as record batches: validation and walking must never panic, and whatever validates
//! must still validate after the broker's header rewrites.
#![no_main]
use brook_protocol::batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for item in batch::Batches::new(data, true) {
        let Ok((h, range)) = item else { break };
        let mut copy = data[range].to_vec();
        batch::set_base_offset(&mut copy, 1234);
        batch::set_partition_leader_epoch(&mut copy, 7);
        let after = batch::validate(&copy).expect("rewriting offset and epoch must keep the CRC");
        assert_eq!(after.records_count, h.records_count);
        batch::set_log_append_time(&mut copy, 42).expect("header already parsed");
        assert!(batch::validate(&copy).is_ok());
    }
});
