package dev.temper.tests;

import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Starts the shared {@link TestServer} before the first test class and registers it in the root
 * store, which JUnit closes (so stops the server) when the whole run is over.
 */
public final class ServerExtension implements BeforeAllCallback {
  private static final ExtensionContext.Namespace NS =
      ExtensionContext.Namespace.create(ServerExtension.class);

  @Override
  public void beforeAll(ExtensionContext context) {
    context.getRoot().getStore(NS).getOrComputeIfAbsent(
        TestServer.class, key -> TestServer.get(), TestServer.class);
  }
}
