# Usage metering, prices and quotas arrive with the billing issue.
