// Usage: node reassign.js <bootstrap> <topic> <broker id>
// kafkajs admin: moves partition 0 of <topic> to <broker id> with alterPartitionReassignments,
// polls listPartitionReassignments until it is empty, then reads the partition's metadata. Prints
// one JSON summary line for tests/integration/test_reassignment.py.
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, target] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: 'brook-kafkajs-reassign', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING,
    retry: { retries: 5, initialRetryTime: 100 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const out = {};
  await admin.alterPartitionReassignments({
    topics: [{ topic, partitionAssignment: [{ partition: 0, replicas: [Number(target)] }] }],
  });
  const deadline = Date.now() + 60000;
  for (;;) {
    const listed = await admin.listPartitionReassignments({});
    if (listed.topics.length === 0) break;
    out.seenMoving = listed.topics;
    if (Date.now() > deadline) throw new Error(`still moving: ${JSON.stringify(listed)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  out.partition = md.topics[0].partitions.find((p) => p.partitionId === 0);
  await admin.disconnect();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
