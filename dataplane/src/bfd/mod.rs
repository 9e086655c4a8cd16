//! BFD (RFC 5880/5881/5883): sans-IO sessions driven by the worker loop.
