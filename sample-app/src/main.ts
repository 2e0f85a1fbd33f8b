import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { LockService } from 'nestjs-sherlock';
import { AppModule } from './app.module.js';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule);
  // On SIGTERM / SIGINT (docker stop, Kubernetes, Ctrl-C) Nest closes the app: SherlockModule
  // then releases the locks still held and closes the backend connection it opened.
  app.enableShutdownHooks();

  const config = app.get(ConfigService);
  await app.listen(Number(config.get<string>('PORT', '3000')));

  const locks = app.get(LockService);
  Logger.log(
    `Listening on ${await app.getUrl()}; locks on the '${locks.backend}' backend, ` +
      `namespace '${config.get<string>('SHERLOCK_NAMESPACE', 'sample')}'`,
    'Bootstrap',
  );
}

await bootstrap();
