/**
 * What every package uses: {@link dev.jtune.util.UserError} (a user's mistake: a message, exit code 2), devices,
 * tensor helpers, and loading and configuring the LibTorch natives. Internal: not a stable API.
 */
package dev.jtune.util;
