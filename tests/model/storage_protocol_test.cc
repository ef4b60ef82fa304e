// The replication log's write command: its encoding round-trips, its fixed stand-in field gives
// message sizes without a decode, and an unconditional put hands its item's canonical encoding to
// the tree as it is.
#include "model/storage_protocol.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace dynasim::model {
namespace {

PrimaryKey key_named(const std::string& name) {
  return PrimaryKey{KeyValue::string(name), std::nullopt};
}

WriteCommand put_of(const std::string& name) {
  WriteCommand command;
  command.client_id = 7;
  command.request_id = 41;
  command.op = StorageOp::kPut;
  command.key = key_named(name);
  command.item = Item(command.key);
  command.item.set("text", std::string(30, 'x'));
  command.item.set("blob", Payload{10'000, 3, 0x1234});
  return command;
}

TEST(WriteCommandTest, EncodingRoundTripsForEveryShape) {
  WriteCommand put = put_of("a");
  WriteCommand conditional = put_of("b");
  conditional.condition.kind = Condition::Kind::kAttributeEquals;
  conditional.condition.attribute = "text";
  conditional.condition.value = std::string("old");
  WriteCommand erase;
  erase.client_id = 1;
  erase.request_id = 2;
  erase.op = StorageOp::kDelete;
  erase.key = key_named("c");
  for (const WriteCommand& command : {put, conditional, erase}) {
    WriteCommand decoded;
    ASSERT_TRUE(WriteCommand::decode(command.encode(), &decoded));
    EXPECT_EQ(decoded.client_id, command.client_id);
    EXPECT_EQ(decoded.request_id, command.request_id);
    EXPECT_EQ(decoded.op, command.op);
    EXPECT_EQ(decoded.key, command.key);
    EXPECT_EQ(decoded.item, command.item);
    EXPECT_EQ(decoded.condition, command.condition);
    // The parts encoder writes the same bytes as the command's own.
    EXPECT_EQ(WriteCommand::encode(command.client_id, command.request_id, command.op, command.key,
                                   command.item, command.condition),
              command.encode());
  }
}

TEST(WriteCommandTest, StandInBytesAreReadWithoutADecodeAndChecked) {
  const WriteCommand put = put_of("a");
  std::vector<uint8_t> bytes = put.encode();
  EXPECT_EQ(WriteCommand::peek_stand_in_bytes(bytes), std::optional<uint64_t>(10'000 - 24));
  EXPECT_EQ(WriteCommand::stand_in_bytes(put.item), 10'000u - 24);
  // A stand-in field that disagrees with the item is not a command.
  bytes[19] ^= 1;
  WriteCommand decoded;
  EXPECT_FALSE(WriteCommand::decode(bytes, &decoded));
  EXPECT_EQ(WriteCommand::peek_stand_in_bytes({}), std::nullopt);
}

TEST(WriteCommandTest, OnlyAnUnconditionalPutYieldsItsItemEncoding) {
  const WriteCommand put = put_of("a");
  const std::vector<uint8_t> bytes = put.encode();
  const auto item = WriteCommand::unconditional_put_item(bytes);
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ(std::vector<uint8_t>(item->begin(), item->end()), put.item.encode());
  WriteCommand conditional = put_of("b");
  conditional.condition.kind = Condition::Kind::kAttributeNotExists;
  conditional.condition.attribute = "text";
  EXPECT_EQ(WriteCommand::unconditional_put_item(conditional.encode()), std::nullopt);
  WriteCommand erase;
  erase.op = StorageOp::kDelete;
  erase.key = key_named("c");
  EXPECT_EQ(WriteCommand::unconditional_put_item(erase.encode()), std::nullopt);
  std::vector<uint8_t> truncated = put.encode();
  truncated.pop_back();
  EXPECT_EQ(WriteCommand::unconditional_put_item(truncated), std::nullopt);
}

}  // namespace
}  // namespace dynasim::model
