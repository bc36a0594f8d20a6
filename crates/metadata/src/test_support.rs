//! Images for the controller logic's unit tests.

use uuid::Uuid;

use crate::cluster::{register_broker, unfence_broker};
use crate::controller::{self, ControllerDefaults, NewTopic};
use crate::{MetadataImage, MetadataRecord};

pub fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        image.apply(r);
    }
}

/// `n` registered, unfenced brokers 1..=n.
pub fn cluster(n: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=n {
        let recs = register_broker(&image, id, "localhost", 9090 + id, None);
        apply(&mut image, &recs);
        let recs = unfence_broker(&image, id);
        apply(&mut image, &recs);
    }
    image
}

/// Creates topic `name` with the given replica lists; returns its id.
pub fn topic(image: &mut MetadataImage, name: &str, assignments: &[Vec<i32>]) -> Uuid {
    let created = controller::create_topic(
        image,
        ControllerDefaults {
            num_partitions: 1,
            default_replication_factor: 1,
        },
        &NewTopic {
            name: name.into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: assignments
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, r)| (i as i32, r))
                .collect(),
            ..Default::default()
        },
    )
    .unwrap();
    apply(image, &created.records);
    created.topic_id
}
