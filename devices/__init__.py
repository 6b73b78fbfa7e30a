"""edgernn.devices: device profiles (TOML) turned into onnxruntime session options and providers."""
