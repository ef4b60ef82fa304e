// A message between processes. The world moves it; only the model reads the body.
//
// The body is immutable and shared, so a duplicated message costs no copy. `size_bytes` is what
// the network charges against bandwidth; `digest` is what the trace fingerprint folds on delivery,
// so the model should set it from the message's content (see MessageBody::digest()).
#pragma once

#include <cstdint>
#include <memory>

namespace dynasim::sim {

class MessageBody {
 public:
  virtual ~MessageBody() = default;
};

struct Message {
  uint32_t type = 0;        // the model's message type; the world does not interpret it
  uint32_t size_bytes = 0;  // on the wire, headers included
  uint64_t digest = 0;      // content digest for the fingerprint
  std::shared_ptr<const MessageBody> body;
};

}  // namespace dynasim::sim
