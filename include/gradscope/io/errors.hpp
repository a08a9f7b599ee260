// The exception the io headers throw. It lives here rather than in core/errors.hpp because only
// code that reads or writes files can meet it, and core must not grow for io's sake.
#pragma once

#include "../core/errors.hpp"

namespace gradscope {

// A file that cannot be read or written, or whose bytes are not what its format promises: a
// truncated checkpoint, a header that is not JSON, an IDX file with the wrong magic number, a
// full disk. The message names the file and what was wrong with it (the tensor, the field).
class io_error : public error {
public:
    using error::error;
};

}  // namespace gradscope
