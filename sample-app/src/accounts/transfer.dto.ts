import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';

/** The body of `POST /accounts/transfer`. */
export interface TransferDto {
  from: string;
  to: string;
  /** A positive whole number. */
  amount: number;
}

/**
 * Checks a transfer body. (A larger app would declare a DTO class with class-validator and use
 * Nest's ValidationPipe; this sample keeps its dependencies to a minimum.)
 */
@Injectable()
export class ParseTransferPipe implements PipeTransform<unknown, TransferDto> {
  transform(value: unknown): TransferDto {
    const { from, to, amount } = (value ?? {}) as Record<string, unknown>;
    if (!isAccountId(from) || !isAccountId(to)) {
      throw new BadRequestException("'from' and 'to' must be account ids");
    }
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) {
      throw new BadRequestException("'amount' must be a positive whole number");
    }
    return { from, to, amount };
  }
}

function isAccountId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}
