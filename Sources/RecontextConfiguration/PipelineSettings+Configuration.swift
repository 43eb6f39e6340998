import RecontextCore

extension PipelineSettings {
    /// The settings a configuration file describes.
    public init(configuration: DaemonConfiguration) {
        self.init(
            host: configuration.host, defaultFormat: configuration.context.defaultFormat,
            defaultInstanceID: configuration.context.instanceID, managedPolicy: configuration.context.managed,
            deviceMode: configuration.context.device.mode, defaultTarget: configuration.context.device.target,
            retry: RetryPolicy(
                attempts: configuration.pipeline.retry.attempts,
                initialBackoff: configuration.pipeline.retry.initialBackoff,
                maxBackoff: configuration.pipeline.retry.maxBackoff),
            limits: configuration.limits)
    }
}
